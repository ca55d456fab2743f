//! `stat` (ansible.builtin): what is at a path, as the registered `stat` dict of ansible-core
//! 2.19's module — the same fields in the same order, the checksum of a readable regular file,
//! the MIME type from the `file` tool and the attributes from `lsattr`, as that module runs
//! them. Changes nothing; runs in check mode.

use std::fs::Metadata;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};
use std::process::Command;

use indexmap::IndexMap;
use minijinja::Value;

use super::query::{expand_path, query};
use crate::args::{ArgDef, ArgSpec, ArgType, Args};
use crate::resource::{Module, ModuleContext, ModuleError, Outcome, Resource};

pub struct StatModule;

/// The digests Ansible's modules offer (`checksum_algorithm`).
pub(crate) const ALGORITHMS: &[&str] = &["md5", "sha1", "sha224", "sha256", "sha384", "sha512"];

static SPEC: ArgSpec = ArgSpec {
    module: "stat",
    args: &[
        ArgDef::new("path", ArgType::Path)
            .aliases(&["dest", "name"])
            .required(),
        ArgDef::new("follow", ArgType::Bool),
        ArgDef::new("get_checksum", ArgType::Bool),
        ArgDef::new("get_mime", ArgType::Bool).aliases(&["mime", "mime_type", "mime-type"]),
        ArgDef::new("get_attributes", ArgType::Bool).aliases(&["attr", "attributes"]),
        ArgDef::new("checksum_algorithm", ArgType::Str)
            .aliases(&["checksum", "checksum_algo"])
            .choices(ALGORITHMS),
    ],
    free_form: false,
    mutually_exclusive: &[],
    required_one_of: &[],
};

/// What one `stat` task asks for.
#[derive(Debug, Clone)]
struct StatRequest {
    path: String,
    follow: bool,
    checksum: Option<String>,
    mime: bool,
    attributes: bool,
}

impl Module for StatModule {
    fn spec(&self) -> &'static ArgSpec {
        &SPEC
    }
    fn prepare(&self, args: &Args, _ctx: &ModuleContext) -> Result<Box<dyn Resource>, ModuleError> {
        let path = args.str("path").unwrap_or_default();
        let req = StatRequest {
            path: expand_path(&path).to_string_lossy().into_owned(),
            follow: args.bool_or("follow", false),
            checksum: args
                .bool_or("get_checksum", true)
                .then(|| args.str("checksum_algorithm"))
                .map(|a| a.unwrap_or_else(|| "sha1".into())),
            mime: args.bool_or("get_mime", true),
            attributes: args.bool_or("get_attributes", true),
        };
        query(move || stat(&req))
    }
}

fn stat(req: &StatRequest) -> Result<Outcome, ModuleError> {
    let path = Path::new(&req.path);
    let meta = if req.follow {
        std::fs::metadata(path)
    } else {
        std::fs::symlink_metadata(path)
    };
    let meta = match meta {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let missing = crate::vars::map_value([("exists", Value::from(false))]);
            return Ok(Outcome::default().with("stat", missing));
        }
        Err(e) => return Ok(super::query::failed(os_strerror(&e))),
    };
    let mut out: IndexMap<&'static str, Value> = IndexMap::new();
    out.insert("exists", Value::from(true));
    out.insert("path", Value::from(req.path.as_str()));
    for (k, v) in mode_fields(&meta) {
        out.insert(k, v);
    }
    out.insert("blocks", Value::from(meta.blocks()));
    out.insert("block_size", Value::from(meta.blksize()));
    out.insert("device_type", Value::from(meta.rdev()));
    for (k, mode) in [
        ("readable", nix::unistd::AccessFlags::R_OK),
        ("writeable", nix::unistd::AccessFlags::W_OK),
        ("executable", nix::unistd::AccessFlags::X_OK),
    ] {
        out.insert(k, Value::from(nix::unistd::access(path, mode).is_ok()));
    }
    if meta.file_type().is_symlink() {
        out.insert(
            "lnk_source",
            Value::from(realpath(path).to_string_lossy().into_owned()),
        );
        let target = std::fs::read_link(path)?;
        out.insert(
            "lnk_target",
            Value::from(target.to_string_lossy().into_owned()),
        );
    }
    if let Some(name) = user_name(meta.uid()) {
        out.insert("pw_name", Value::from(name));
    }
    if let Some(name) = group_name(meta.gid()) {
        out.insert("gr_name", Value::from(name));
    }
    let readable = out.get("readable").is_some_and(|v| v.is_true());
    if meta.file_type().is_file() && readable {
        if let Some(algo) = &req.checksum {
            out.insert("checksum", Value::from(digest_file(path, algo)?));
        }
    }
    if req.mime {
        let (mimetype, charset) = mime(path);
        out.insert("mimetype", Value::from(mimetype));
        out.insert("charset", Value::from(charset));
    }
    if req.attributes {
        let attrs = lsattr(path);
        out.insert(
            "version",
            attrs.version.map_or(Value::from(()), Value::from),
        );
        out.insert(
            "attributes",
            Value::from(
                attrs
                    .attributes
                    .into_iter()
                    .map(Value::from)
                    .collect::<Vec<_>>(),
            ),
        );
        out.insert("attr_flags", Value::from(attrs.flags));
    }
    Ok(Outcome::default().with("stat", crate::vars::map_value(out)))
}

/// Python's `strerror` of an OS error (`Permission denied`), without Rust's ` (os error N)`.
fn os_strerror(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(n) => nix::errno::Errno::from_raw(n).desc().to_string(),
        None => e.to_string(),
    }
}

/// The fields of Ansible's `format_output` (and `find`'s `statinfo`) from `mode` to `isgid`,
/// in their order, without the user and group names.
pub(crate) fn mode_fields(meta: &Metadata) -> Vec<(&'static str, Value)> {
    let mode = meta.mode();
    let ft = meta.file_type();
    use std::os::unix::fs::FileTypeExt;
    let bit = |b: u32| Value::from(mode & b != 0);
    vec![
        ("mode", Value::from(format!("{:04o}", mode & 0o7777))),
        ("isdir", Value::from(ft.is_dir())),
        ("ischr", Value::from(ft.is_char_device())),
        ("isblk", Value::from(ft.is_block_device())),
        ("isreg", Value::from(ft.is_file())),
        ("isfifo", Value::from(ft.is_fifo())),
        ("islnk", Value::from(ft.is_symlink())),
        ("issock", Value::from(ft.is_socket())),
        ("uid", Value::from(meta.uid())),
        ("gid", Value::from(meta.gid())),
        ("size", Value::from(meta.size())),
        ("inode", Value::from(meta.ino())),
        ("dev", Value::from(meta.dev())),
        ("nlink", Value::from(meta.nlink())),
        ("atime", py_time(meta.atime(), meta.atime_nsec())),
        ("mtime", py_time(meta.mtime(), meta.mtime_nsec())),
        ("ctime", py_time(meta.ctime(), meta.ctime_nsec())),
        ("wusr", bit(0o200)),
        ("rusr", bit(0o400)),
        ("xusr", bit(0o100)),
        ("wgrp", bit(0o020)),
        ("rgrp", bit(0o040)),
        ("xgrp", bit(0o010)),
        ("woth", bit(0o002)),
        ("roth", bit(0o004)),
        ("xoth", bit(0o001)),
        ("isuid", bit(0o4000)),
        ("isgid", bit(0o2000)),
    ]
}

/// Python's float `st_*time`.
fn py_time(secs: i64, nsec: i64) -> Value {
    Value::from(secs as f64 + nsec as f64 * 1e-9)
}

pub(crate) fn user_name(uid: u32) -> Option<String> {
    nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        .ok()
        .flatten()
        .map(|u| u.name)
}

pub(crate) fn group_name(gid: u32) -> Option<String> {
    nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(gid))
        .ok()
        .flatten()
        .map(|g| g.name)
}

/// The hex digest of a file's content (`module.digest_from_file`: the link's target is read).
pub(crate) fn digest_file(path: &Path, algorithm: &str) -> Result<String, ModuleError> {
    use sha2::Digest;
    use std::io::Read;
    fn run<D: Digest>(mut file: std::fs::File) -> std::io::Result<String> {
        let mut d = D::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = file.read(&mut buf)?;
            if n == 0 {
                break;
            }
            d.update(&buf[..n]);
        }
        Ok(d.finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>())
    }
    let file = std::fs::File::open(path)
        .map_err(|e| ModuleError::new(format!("cannot read {}: {e}", path.display())))?;
    let hex = match algorithm {
        "md5" => run::<md5::Md5>(file),
        "sha1" => run::<sha1::Sha1>(file),
        "sha224" => run::<sha2::Sha224>(file),
        "sha256" => run::<sha2::Sha256>(file),
        "sha384" => run::<sha2::Sha384>(file),
        "sha512" => run::<sha2::Sha512>(file),
        other => {
            return Err(ModuleError::new(format!(
                "Could not hash file '{}' with algorithm '{other}'. Available algorithms: {}",
                path.display(),
                ALGORITHMS.join(", ")
            )))
        }
    };
    hex.map_err(|e| ModuleError::new(format!("cannot read {}: {e}", path.display())))
}

/// Python's `os.path.realpath` (not strict): symlinks resolved as far as they exist; a
/// missing part and what follows it are kept as written, a loop stops resolving.
pub(crate) fn realpath(path: &Path) -> PathBuf {
    let start = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().unwrap_or_default().join(path)
    };
    let mut todo: Vec<std::ffi::OsString> = start
        .components()
        .rev()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s.to_os_string()),
            Component::ParentDir => Some("..".into()),
            _ => None,
        })
        .collect();
    let mut done = PathBuf::from("/");
    let mut links = 0;
    while let Some(part) = todo.pop() {
        if part == ".." {
            done.pop();
            continue;
        }
        if part == "." {
            continue;
        }
        let next = done.join(&part);
        match std::fs::read_link(&next) {
            Ok(target) if links < 40 => {
                links += 1;
                if target.is_absolute() {
                    done = PathBuf::from("/");
                }
                for c in target.components().rev() {
                    match c {
                        Component::Normal(s) => todo.push(s.to_os_string()),
                        Component::ParentDir => todo.push("..".into()),
                        _ => {}
                    }
                }
            }
            _ => done = next,
        }
    }
    done
}

/// `file --mime-type --mime-encoding PATH`, as Ansible parses it; `unknown` when the tool is
/// missing or fails.
fn mime(path: &Path) -> (String, String) {
    let unknown = || ("unknown".to_string(), "unknown".to_string());
    let Some(file) = bin_path("file") else {
        return unknown();
    };
    let Ok(ran) = crate::process::run(
        Command::new(file)
            .args(["--mime-type", "--mime-encoding"])
            .arg(path),
    ) else {
        return unknown();
    };
    if !ran.ok() {
        return unknown();
    }
    parse_mime(&ran.stdout).unwrap_or_else(unknown)
}

/// `out.rsplit(':', 1)[1].split(';')`, then the charset after `=`.
fn parse_mime(out: &str) -> Option<(String, String)> {
    let (_, tail) = out.rsplit_once(':')?;
    let mut parts = tail.split(';');
    let (mimetype, charset) = (parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let charset = charset.split('=').nth(1)?;
    Some((mimetype.trim().to_string(), charset.trim().to_string()))
}

/// What `lsattr -vd` reports (Ansible's `get_file_attributes`).
#[derive(Debug, Default, PartialEq)]
struct FileAttributes {
    version: Option<String>,
    flags: String,
    attributes: Vec<&'static str>,
}

fn lsattr(path: &Path) -> FileAttributes {
    let Some(tool) = bin_path("lsattr") else {
        return FileAttributes::default();
    };
    match crate::process::run(Command::new(tool).arg("-vd").arg(path)) {
        Ok(ran) if ran.ok() => parse_lsattr(&ran.stdout),
        _ => FileAttributes::default(),
    }
}

fn parse_lsattr(out: &str) -> FileAttributes {
    let mut words = out.split_whitespace();
    let (Some(version), Some(flags)) = (words.next(), words.next()) else {
        return FileAttributes::default();
    };
    let flags = flags.replace('-', "");
    FileAttributes {
        version: Some(version.to_string()),
        attributes: flags.chars().filter_map(attribute_name).collect(),
        flags,
    }
}

/// ansible's `FILE_ATTRIBUTES`.
fn attribute_name(flag: char) -> Option<&'static str> {
    Some(match flag {
        'A' => "noatime",
        'a' => "append",
        'c' => "compressed",
        'C' => "nocow",
        'd' => "nodump",
        'D' => "dirsync",
        'e' => "extents",
        'E' => "encrypted",
        'h' => "blocksize",
        'i' => "immutable",
        'I' => "indexed",
        'j' => "journalled",
        'N' => "inline",
        's' => "zero",
        'S' => "synchronous",
        't' => "notail",
        'T' => "blockroot",
        'u' => "undelete",
        'X' => "compressedraw",
        'Z' => "compresseddirty",
        _ => return None,
    })
}

/// Ansible's `get_bin_path`: `PATH`, then the sbin directories.
pub(crate) fn bin_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/sbin", "/usr/sbin", "/usr/local/sbin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.mode() & 0o111 != 0)
                && !p.as_os_str().as_bytes().is_empty()
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modules::testing::{v, Harness};

    fn stat_of(h: &Harness, args: &[(&str, Value)]) -> Value {
        let (changed, out) = h.run(&StatModule, args).unwrap();
        assert!(!changed);
        assert!(out.failed.is_none(), "{:?}", out.failed);
        out.data.get("stat").cloned().unwrap()
    }

    #[test]
    fn a_file_and_a_link() {
        let h = Harness::new();
        std::fs::write(h.h("f"), "hello\n").unwrap();
        std::fs::set_permissions(
            h.h("f"),
            std::os::unix::fs::PermissionsExt::from_mode(0o640),
        )
        .unwrap();
        std::os::unix::fs::symlink("f", h.h("l")).unwrap();
        let st = stat_of(&h, &[("path", v(&h.hs("f")))]);
        let get = |st: &Value, k: &str| st.get_attr(k).unwrap();
        assert_eq!(get(&st, "mode").as_str(), Some("0640"));
        assert!(get(&st, "isreg").is_true());
        assert_eq!(
            get(&st, "checksum").as_str(),
            Some("f572d396fae9206628714fb2ce00f72e94f2258f")
        );
        assert_eq!(get(&st, "size"), Value::from(6));
        let l = stat_of(
            &h,
            &[("path", v(&h.hs("l"))), ("get_mime", Value::from(false))],
        );
        assert!(get(&l, "islnk").is_true());
        assert_eq!(get(&l, "lnk_target").as_str(), Some("f"));
        assert_eq!(get(&l, "lnk_source").as_str(), Some(h.hs("f").as_str()));
        assert!(get(&l, "checksum").is_undefined());
        assert!(get(&l, "mimetype").is_undefined());
        let followed = stat_of(
            &h,
            &[
                ("path", v(&h.hs("l"))),
                ("follow", Value::from(true)),
                ("checksum_algorithm", v("sha256")),
            ],
        );
        assert!(get(&followed, "isreg").is_true());
        assert_eq!(
            get(&followed, "checksum").as_str(),
            Some("5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03")
        );
        let missing = stat_of(&h, &[("path", v(&h.hs("nope")))]);
        assert_eq!(missing.to_string(), "{'exists': False}");
    }

    #[test]
    fn tool_outputs_parse_as_ansible_reads_them() {
        assert_eq!(
            parse_mime("/etc/passwd: text/plain; charset=us-ascii\n"),
            Some(("text/plain".into(), "us-ascii".into()))
        );
        assert_eq!(parse_mime("garbage"), None);
        let a = parse_lsattr("360765353  --------------e------- /etc/passwd\n");
        assert_eq!(a.version.as_deref(), Some("360765353"));
        assert_eq!(a.flags, "e");
        assert_eq!(a.attributes, vec!["extents"]);
        assert_eq!(parse_lsattr(""), FileAttributes::default());
    }

    #[test]
    fn realpath_resolves_what_exists() {
        let h = Harness::new();
        std::fs::create_dir(h.h("d")).unwrap();
        std::os::unix::fs::symlink(h.h("d"), h.h("ld")).unwrap();
        std::os::unix::fs::symlink("missing/x", h.h("d/broken")).unwrap();
        let base = realpath(h.host.path());
        assert_eq!(realpath(&h.h("ld/broken")), base.join("d/missing/x"));
        assert_eq!(realpath(&h.h("ld/../d")), base.join("d"));
    }
}
