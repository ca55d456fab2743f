//! Reading an archive for `unarchive`: the format by its first bytes (as Ansible's handlers
//! recognise them by content, not by name), decompression, and the members, checked for
//! paths and links that would land outside `dest` before anything is extracted.

use std::io::Read;

/// How the archive is packed; the names are Ansible's handler classes (the result's `handler`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Tar,
    TarGz,
    TarXz,
    TarZstd,
    TarBz2,
}

impl Format {
    /// Ansible tries its handlers in order: `TgzArchive` (`tar -z`) takes gzip, then
    /// `TarArchive` (GNU tar guessing the compression) takes every other tar.
    pub fn handler(self) -> &'static str {
        match self {
            Format::TarGz => "TgzArchive",
            Format::Tar | Format::TarXz | Format::TarZstd | Format::TarBz2 => "TarArchive",
        }
    }

    /// The format of `data`, or why it cannot be read.
    pub fn detect(data: &[u8], src: &str) -> Result<Format, String> {
        if data.starts_with(&[0x1f, 0x8b]) {
            Ok(Format::TarGz)
        } else if data.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
            Ok(Format::TarXz)
        } else if data.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Ok(Format::TarZstd)
        } else if data.len() >= 262 && &data[257..262] == b"ustar" {
            Ok(Format::Tar)
        } else if data.starts_with(b"PK\x03\x04") || data.starts_with(b"PK\x05\x06") {
            Err(format!(
                "{src} is a zip archive: zip is not supported by the agent's unarchive yet \
                 (tar, tar.gz, tar.bz2, tar.xz and tar.zst are)"
            ))
        } else if data.starts_with(b"BZh") {
            Ok(Format::TarBz2)
        } else {
            Err(format!(
                "Failed to find handler for \"{src}\". Make sure the required command to extract \
                 the file is installed."
            ))
        }
    }

    /// The tar stream inside `data`.
    pub fn decompress(self, data: &[u8]) -> Result<Vec<u8>, String> {
        let mut out = Vec::new();
        let r = match self {
            Format::Tar => return Ok(data.to_vec()),
            Format::TarGz => flate2::read::MultiGzDecoder::new(data)
                .read_to_end(&mut out)
                .map(|_| ())
                .map_err(|e| e.to_string()),
            Format::TarXz => lzma_rs::xz_decompress(&mut std::io::BufReader::new(data), &mut out)
                .map_err(|e| format!("{e:?}")),
            Format::TarBz2 => bzip2::read::MultiBzDecoder::new(data)
                .read_to_end(&mut out)
                .map(|_| ())
                .map_err(|e| e.to_string()),
            Format::TarZstd => ruzstd::decoding::StreamingDecoder::new(data)
                .map_err(|e| e.to_string())
                .and_then(|mut d| {
                    d.read_to_end(&mut out)
                        .map(|_| ())
                        .map_err(|e| e.to_string())
                }),
        };
        r.map(|_| out)
            .map_err(|e| format!("the archive cannot be decompressed: {e}"))
    }
}

/// What a member is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    File(std::sync::Arc<[u8]>),
    Dir,
    /// A symbolic link to this target (as written in the archive).
    Symlink(String),
    /// A hard link to another member (its path relative to `dest`).
    Hardlink(String),
}

/// One member of the archive, as it will be extracted.
#[derive(Debug, Clone)]
pub struct Member {
    /// The name as `tar --list` prints it (after `--strip-components`), for `files`.
    pub listed: String,
    /// The path relative to `dest` (no `./`, no trailing `/`).
    pub path: String,
    pub body: Body,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub uname: String,
    pub gname: String,
    pub mtime: i64,
    /// Listed but not extracted: a directory whose whole name `--strip-components` removed
    /// (GNU tar lists it as an empty name).
    pub listed_only: bool,
}

/// The members of a tar stream, `strip` leading components removed (members left without a
/// name are skipped, as GNU tar does). Refuses the whole archive when a member would land
/// outside `dest`.
pub fn tar_members(tar_bytes: &[u8], strip: usize) -> Result<Vec<Member>, String> {
    let mut archive = tar::Archive::new(tar_bytes);
    let entries = archive.entries().map_err(|e| e.to_string())?;
    let mut members = Vec::new();
    for entry in entries {
        let mut entry = entry.map_err(|e| format!("the archive cannot be read: {e}"))?;
        let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let Some(listed) = strip_components(&raw, strip) else {
            continue;
        };
        let listed_only = strip > 0 && listed.is_empty();
        let path = safe_path(&listed)?;
        let header = entry.header().clone();
        let kind = header.entry_type();
        let body = if kind.is_dir() {
            Body::Dir
        } else if kind.is_symlink() {
            let target = entry
                .link_name_bytes()
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default();
            Body::Symlink(target)
        } else if kind.is_hard_link() {
            let raw_target = entry
                .link_name_bytes()
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default();
            let Some(t) = strip_components(&raw_target, strip) else {
                return Err(format!(
                    "{raw}: hard link to {raw_target}, outside the extracted members"
                ));
            };
            Body::Hardlink(safe_path(&t)?)
        } else if kind.is_file() || kind == tar::EntryType::Continuous {
            let mut data = Vec::with_capacity(entry.size() as usize);
            entry
                .read_to_end(&mut data)
                .map_err(|e| format!("the archive cannot be read: {e}"))?;
            Body::File(data.into())
        } else if kind.is_pax_global_extensions() || kind.is_gnu_longname() {
            continue;
        } else {
            return Err(format!(
                "{raw}: member of a kind the agent does not extract (devices, fifos)"
            ));
        };
        if path.is_empty() && body != Body::Dir {
            return Err(format!("{raw}: a member without a name"));
        }
        members.push(Member {
            listed,
            path,
            body,
            mode: header.mode().unwrap_or(0o644) & 0o7777,
            uid: header.uid().unwrap_or(0) as u32,
            gid: header.gid().unwrap_or(0) as u32,
            uname: header
                .username()
                .ok()
                .flatten()
                .unwrap_or_default()
                .to_string(),
            gname: header
                .groupname()
                .ok()
                .flatten()
                .unwrap_or_default()
                .to_string(),
            mtime: header.mtime().unwrap_or(0) as i64,
            listed_only,
        });
    }
    check_links(&members)?;
    Ok(members)
}

/// `name` without its first `n` components (`None` when nothing is left), as
/// `--strip-components` does.
fn strip_components(name: &str, n: usize) -> Option<String> {
    if n == 0 {
        return Some(name.to_string());
    }
    let parts: Vec<&str> = name.split('/').filter(|p| !p.is_empty()).collect();
    if parts.len() == n && name.ends_with('/') {
        return Some(String::new());
    }
    if parts.len() <= n {
        return None;
    }
    let mut rest = parts[n..].join("/");
    if name.ends_with('/') {
        rest.push('/');
    }
    Some(rest)
}

/// The member's path relative to `dest`; an absolute name or a `..` component refuses the
/// archive (GNU tar would strip a leading `/` and skip `..` members, with a warning).
fn safe_path(name: &str) -> Result<String, String> {
    if name.starts_with('/') {
        return Err(format!(
            "archive member {name} has an absolute path: refused, nothing extracted"
        ));
    }
    let mut parts = Vec::new();
    for part in name.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                return Err(format!(
                    "archive member {name} contains '..': refused, nothing extracted"
                ))
            }
            p => parts.push(p),
        }
    }
    Ok(parts.join("/"))
}

/// Symbolic links must point inside `dest` (relative targets that stay below it), and no member
/// may be extracted through a link another member creates.
fn check_links(members: &[Member]) -> Result<(), String> {
    let links: Vec<&str> = members
        .iter()
        .filter(|m| matches!(m.body, Body::Symlink(_)))
        .map(|m| m.path.as_str())
        .collect();
    for m in members {
        if let Body::Symlink(target) = &m.body {
            if target.starts_with('/') || escapes(&m.path, target) {
                return Err(format!(
                    "archive member {} is a link to {target}, outside the destination: refused, \
                     nothing extracted",
                    m.listed
                ));
            }
        }
        if let Some(l) = links.iter().find(|l| {
            m.path.len() > l.len() && m.path.starts_with(**l) && m.path.as_bytes()[l.len()] == b'/'
        }) {
            return Err(format!(
                "archive member {} would be extracted through the link {l}: refused, nothing \
                 extracted",
                m.listed
            ));
        }
    }
    Ok(())
}

/// True when the link at `path` (relative to dest) with the relative `target` resolves above
/// dest.
fn escapes(path: &str, target: &str) -> bool {
    let mut depth: i64 = path.split('/').filter(|p| !p.is_empty()).count() as i64 - 1;
    for part in target.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                depth -= 1;
                if depth < 0 {
                    return true;
                }
            }
            _ => depth += 1,
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(safe_path("./a/b/").unwrap(), "a/b");
        assert!(safe_path("/etc/passwd").unwrap_err().contains("absolute"));
        assert!(safe_path("a/../../x").unwrap_err().contains(".."));
        assert_eq!(strip_components("top/a/b", 1).as_deref(), Some("a/b"));
        assert_eq!(strip_components("top/", 1).as_deref(), Some(""));
        assert_eq!(strip_components("top", 1), None);
        assert!(escapes("a/link", "../../x"));
        assert!(!escapes("a/link", "../x"));
        assert!(escapes("link", ".."));
    }
}
