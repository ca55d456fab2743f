//! The `get_url` module: a file downloaded from an http(s) or file URL to `dest`.
//!
//! ansible-core 2.19's `get_url.py`, step by step:
//! - `checksum` given (`algo:hex`, or `algo:URL` of a checksum file, fetched first) and `dest` an
//!   existing file whose digest matches: no request at all; only owner/group/mode are set
//!   (`file already exists`).
//! - `dest` an existing file otherwise: the request carries `If-Modified-Since` (the file's
//!   mtime) unless `force` or the checksum differs; a `304` changes nothing.
//! - `dest` a directory: always downloaded; the name comes from `Content-Disposition`, else the
//!   last segment of the final URL (`index.html` when empty).
//! - the download replaces `dest` only when its SHA-1 differs; with a `checksum` it must match
//!   first (`The checksum for ... did not match ...`).
//! - check mode sends `HEAD`; `changed` compares the SHA-1 of the (empty) answer with `dest`'s.
//!
//! The download is held in memory until written (atomically, as every file write).

pub mod checksum;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use minijinja::Value;

use self::checksum::{Algorithm, Expected};
use crate::args::{ArgDef, ArgSpec, ArgType, Args};
use crate::error::LoadError;
use crate::fsops::{self, IdCache, Kind};
use crate::host::HostState;
use crate::http::{self, ClientOptions, Credentials, Redirects, Request, Response};
use crate::mode::{self, Mode};
use crate::modules::copy::{plan_file, Common};
use crate::resource::{
    Attrs, Check, LoadContext, Module, ModuleContext, ModuleError, Outcome, Owned, Resource,
    TaskArgs,
};

pub struct GetUrlModule;

static SPEC: ArgSpec = ArgSpec {
    module: "get_url",
    args: &[
        ArgDef::new("url", ArgType::Str).required(),
        ArgDef::new("dest", ArgType::Path).required(),
        ArgDef::new("backup", ArgType::Bool),
        ArgDef::new("checksum", ArgType::Str),
        ArgDef::new("force", ArgType::Bool).aliases(&["thirsty"]),
        ArgDef::new("timeout", ArgType::Int),
        ArgDef::new("headers", ArgType::Dict),
        ArgDef::new("tmp_dest", ArgType::Path),
        ArgDef::new("http_agent", ArgType::Str),
        ArgDef::new("use_proxy", ArgType::Bool),
        ArgDef::new("validate_certs", ArgType::Bool),
        ArgDef::new("url_username", ArgType::Str).aliases(&["username"]),
        ArgDef::new("url_password", ArgType::Str).aliases(&["password"]),
        ArgDef::new("force_basic_auth", ArgType::Bool),
        ArgDef::new("mode", ArgType::Mode),
        ArgDef::new("owner", ArgType::Str),
        ArgDef::new("group", ArgType::Str),
    ],
    free_form: false,
    mutually_exclusive: &[],
    required_one_of: &[],
};

impl Module for GetUrlModule {
    fn spec(&self) -> &'static ArgSpec {
        &SPEC
    }

    fn validate(&self, args: &TaskArgs, ctx: &LoadContext) -> Result<(), LoadError> {
        refuse_scheme(args, ctx, "url")?;
        if let Some((text, node)) = args.literal_str("checksum") {
            if !text.is_empty() {
                checksum::parse(text)
                    .map_err(|e| LoadError::at(ctx.at(node), e).with_key("checksum"))?;
            }
        }
        Ok(())
    }

    fn prepare(&self, args: &Args, ctx: &ModuleContext) -> Result<Box<dyn Resource>, ModuleError> {
        let url = args.str("url").unwrap_or_default();
        http::check_scheme(&url).map_err(|e| ModuleError::new(e.to_string()))?;
        let checksum = match args.str("checksum").filter(|c| !c.is_empty()) {
            Some(c) => Some(checksum::parse(&c).map_err(ModuleError::new)?),
            None => None,
        };
        Ok(Box::new(GetUrl {
            url,
            dest: PathBuf::from(args.str("dest").unwrap_or_default()),
            checksum,
            force: args.bool_or("force", false),
            tmp_dest: args
                .str("tmp_dest")
                .filter(|t| !t.is_empty())
                .map(PathBuf::from),
            fetch: Fetch::from_args(args, 10)?,
            common: Common {
                force: true,
                ..file_common(args, ctx.host.ids())?
            },
            check_mode: ctx.check_mode,
            host: ctx.host.clone(),
        }))
    }
}

/// Refuses at load a literal URL whose scheme the client does not speak.
pub(crate) fn refuse_scheme(
    args: &TaskArgs,
    ctx: &LoadContext,
    key: &str,
) -> Result<(), LoadError> {
    if let Some((text, node)) = args.literal_str(key) {
        http::check_scheme(text)
            .map_err(|e| LoadError::at(ctx.at(node), e.to_string()).with_key(key))?;
    }
    Ok(())
}

/// `owner`, `group`, `mode` and `backup` as `copy` reads them (no `validate`, no `follow`).
pub(crate) fn file_common(args: &Args, ids: &IdCache) -> Result<Common, ModuleError> {
    Ok(Common {
        mode: args
            .get("mode")
            .map(Mode::parse)
            .transpose()
            .map_err(ModuleError::new)?,
        directory_mode: None,
        uid: args.str("owner").map(|o| ids.uid_for(&o)).transpose()?,
        gid: args.str("group").map(|g| ids.gid_for(&g)).transpose()?,
        backup: args.bool_or("backup", false),
        force: true,
        validate: None,
        follow: false,
    })
}

/// How to make a task's requests: the client options and the request's own parts.
#[derive(Debug, Clone)]
pub(crate) struct Fetch {
    pub client: ClientOptions,
    pub headers: Vec<(String, String)>,
    pub credentials: Option<Credentials>,
}

impl Fetch {
    /// The `url_argument_spec` arguments (`timeout` defaults differ: get_url 10, uri 30).
    pub fn from_args(args: &Args, default_timeout: i64) -> Result<Fetch, ModuleError> {
        let timeout = args.int("timeout").unwrap_or(default_timeout).max(0) as u64;
        let headers = match args.get("headers") {
            Some(h) if !h.is_none() && !h.is_undefined() => dict_pairs(h)?,
            _ => Vec::new(),
        };
        let credentials = match (args.str("url_username"), args.str("url_password")) {
            (Some(user), password) if !user.is_empty() => Some(Credentials {
                user,
                password: password.unwrap_or_default(),
                force: args.bool_or("force_basic_auth", false),
            }),
            _ => None,
        };
        Ok(Fetch {
            client: ClientOptions {
                timeout: Duration::from_secs(timeout),
                validate_certs: args.bool_or("validate_certs", true),
                use_proxy: args.bool_or("use_proxy", true),
                http_agent: args
                    .str("http_agent")
                    .unwrap_or_else(|| "ansible-httpget".into()),
                redirects: Redirects::Safe,
            },
            headers,
            credentials,
        })
    }

    pub fn request(&self, method: &str, url: &str) -> Request {
        Request {
            method: method.into(),
            url: url.into(),
            headers: self.headers.clone(),
            credentials: self.credentials.clone(),
            ..Request::default()
        }
    }

    pub fn send(&self, req: &Request) -> Result<Response, ModuleError> {
        http::send(&self.client, req).map_err(|e| ModuleError::new(e.to_string()))
    }
}

/// A mapping's entries as text pairs (header names and values).
pub(crate) fn dict_pairs(value: &Value) -> Result<Vec<(String, String)>, ModuleError> {
    let keys = value
        .try_iter()
        .map_err(|_| ModuleError::new("headers must be a mapping"))?;
    let mut out = Vec::new();
    for k in keys {
        let v = value
            .get_item(&k)
            .map_err(|e| ModuleError::new(e.to_string()))?;
        out.push((crate::args::python_str(&k), crate::args::python_str(&v)));
    }
    Ok(out)
}

struct GetUrl {
    url: String,
    dest: PathBuf,
    checksum: Option<(Algorithm, Expected)>,
    force: bool,
    tmp_dest: Option<PathBuf>,
    fetch: Fetch,
    common: Common,
    check_mode: bool,
    host: Arc<HostState>,
}

impl GetUrl {
    fn outcome(&self, dest: &Path) -> Outcome {
        Outcome::default()
            .with("url", self.url.clone())
            .with("dest", dest.display().to_string())
            .with("elapsed", 0)
    }

    /// The expected digest, downloading the checksum file when one is named.
    fn expected(&self) -> Result<Option<(Algorithm, String)>, ModuleError> {
        let Some((algo, expected)) = &self.checksum else {
            return Ok(None);
        };
        let hex = match expected {
            Expected::Hex(h) => h.clone(),
            Expected::Url(sums) => {
                let resp = self.get_ok(&self.fetch.request("GET", sums))?;
                let filename = url_filename(&self.url);
                let text = String::from_utf8_lossy(&resp.body);
                let found = checksum::digest_for(&filename, &text).ok_or_else(|| {
                    ModuleError::new(format!(
                        "Unable to find a checksum for file '{filename}' in '{sums}'"
                    ))
                })?;
                checksum::normalize(&found).map_err(ModuleError::new)?
            }
        };
        Ok(Some((*algo, hex)))
    }

    /// A request whose answer must be 200 (any answer for a file:// URL).
    fn get_ok(&self, req: &Request) -> Result<Response, ModuleError> {
        let resp = self.fetch.send(req)?;
        if resp.status != 200 && !req.url.starts_with("file:") {
            return Err(ModuleError::new(format!(
                "Request failed: {} ({})",
                resp.msg, req.url
            )));
        }
        Ok(resp)
    }

    fn check_tmp_dest(&self) -> Result<(), ModuleError> {
        let Some(t) = &self.tmp_dest else {
            return Ok(());
        };
        match fsops::stat(t)? {
            Some(st) if st.kind == Kind::Dir => Ok(()),
            Some(_) => Err(ModuleError::new(format!(
                "{} is a file but should be a directory.",
                t.display()
            ))),
            None => Err(ModuleError::new(format!(
                "{} directory does not exist.",
                t.display()
            ))),
        }
    }

    /// `dest` exists and has the expected digest: only its attributes may change.
    fn already_there(&self) -> Result<Check, ModuleError> {
        let st = fsops::stat(&self.dest)?
            .ok_or_else(|| ModuleError::new(format!("{} vanished", self.dest.display())))?;
        let changes = fsops::attr_changes(&self.dest, &st, &self.attrs(st.mode));
        let msg = if changes.is_empty() {
            "file already exists"
        } else {
            "file already exists but file attributes changed"
        };
        let mut out = self
            .outcome(&self.dest)
            .with("msg", msg)
            .with("checksum_dest", Value::from(()))
            .with("checksum_src", Value::from(()));
        fsops::path_facts(&mut out, &st, self.host.ids());
        let mut check = Check::new(changes, out);
        check.path = Some(self.dest.clone());
        Ok(check)
    }

    fn attrs(&self, current_mode: u32) -> Attrs {
        Attrs {
            mode: self
                .common
                .mode
                .as_ref()
                .map(|m| m.resolve(current_mode, false, mode::umask())),
            uid: self.common.uid,
            gid: self.common.gid,
        }
    }
}

impl Resource for GetUrl {
    fn check(&self) -> Result<Check, ModuleError> {
        let started = Instant::now();
        let expected = self.expected()?;
        let dest_st = fsops::stat(&self.dest)?;
        let dest_is_dir = dest_st.as_ref().is_some_and(|s| s.kind == Kind::Dir);
        let mut if_modified_since = None;
        if dest_st.is_some() && !dest_is_dir {
            let mut mismatch = false;
            if let (false, Some((algo, hex))) = (self.force, &expected) {
                if &checksum::digest_file(*algo, &self.dest)? == hex {
                    return self.already_there();
                }
                mismatch = true;
            }
            // A file already there is downloaded again only if the server has a newer one.
            if !self.force && !mismatch {
                if_modified_since = std::fs::metadata(&self.dest)?.modified().ok();
            }
        }
        self.check_tmp_dest()?;
        let method = if self.check_mode { "HEAD" } else { "GET" };
        let mut req = self.fetch.request(method, &self.url);
        req.if_modified_since = if_modified_since;
        let resp = self.fetch.send(&req)?;
        let elapsed = started.elapsed().as_secs();
        if resp.status == 304 {
            let mut out = self
                .outcome(&self.dest)
                .with("msg", resp.msg.clone())
                .with("status_code", resp.status)
                .with("elapsed", elapsed);
            out.changed = Some(false);
            fsops::path_facts_at(&mut out, &self.dest, self.host.ids());
            return Ok(Check::new(Vec::new(), out));
        }
        if resp.status != 200 && !self.url.starts_with("file:") {
            return Err(ModuleError::new(format!(
                "Request failed: {} (status {})",
                resp.msg, resp.status
            )));
        }
        let dest = if dest_is_dir {
            let name = content_disposition_name(&resp).unwrap_or_else(|| url_filename(&resp.url));
            self.dest.join(name)
        } else {
            self.dest.clone()
        };
        let checksum_src = checksum::digest(Algorithm::Sha1, &resp.body);
        let checksum_dest = match fsops::stat(&dest)? {
            Some(st) if st.kind == Kind::File => {
                Some(checksum::digest_file(Algorithm::Sha1, &dest)?)
            }
            Some(_) => {
                return Err(ModuleError::new(format!(
                    "Destination {} is not a regular file",
                    dest.display()
                )))
            }
            None => {
                let parent = dest.parent().unwrap_or(Path::new("/"));
                if fsops::stat(parent)?.is_none() {
                    return Err(ModuleError::new(format!(
                        "Destination {} does not exist",
                        parent.display()
                    )));
                }
                None
            }
        };
        let mut out = self
            .outcome(&dest)
            .with("elapsed", elapsed)
            .with("checksum_src", checksum_src.clone())
            .with("checksum_dest", Value::from(checksum_dest.clone()))
            .with("msg", resp.msg.clone());
        if self.check_mode {
            out.changed = Some(checksum_dest.as_deref() != Some(checksum_src.as_str()));
            return Ok(Check::new(Vec::new(), out));
        }
        if let Some((algo, hex)) = &expected {
            let got = checksum::digest(*algo, &resp.body);
            if &got != hex {
                return Err(ModuleError::new(format!(
                    "The checksum for {} did not match {hex}; it was {got}.",
                    dest.display()
                )));
            }
        }
        out = out
            .with("status_code", resp.status)
            .with("md5sum", checksum::digest(Algorithm::Md5, &resp.body));
        let mut changes = Vec::new();
        let content: Arc<[u8]> = Arc::from(resp.body);
        let path = plan_file(&dest, &content, 0o644, &self.common, &mut changes)?;
        let mut check = Check::new(changes, out);
        check.path = Some(path);
        Ok(check)
    }

    fn apply(&self, check: Check) -> Result<Outcome, ModuleError> {
        let applied = fsops::apply_all(&check.changes)?;
        let mut out = check.outcome;
        if let Some(b) = applied.backup_file {
            out = out.with("backup_file", b.display().to_string());
        }
        if let Some(path) = &check.path {
            fsops::path_facts_at(&mut out, path, self.host.ids());
        }
        Ok(out)
    }

    fn owns(&self) -> Vec<Owned> {
        vec![Owned::Path(self.dest.clone())]
    }
}

/// The last segment of a URL's path (`index.html` when empty), as Ansible's `url_filename`.
pub(crate) fn url_filename(url: &str) -> String {
    let after_scheme = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let path = match after_scheme.find('/') {
        Some(i) => &after_scheme[i..],
        None => "",
    };
    let path = path.split(['?', '#']).next().unwrap_or("");
    match path.rsplit('/').next() {
        Some(name) if !name.is_empty() => name.to_string(),
        _ => "index.html".to_string(),
    }
}

/// The `filename` of a `Content-Disposition` header, without directories.
fn content_disposition_name(resp: &Response) -> Option<String> {
    let header = resp.header("content-disposition")?;
    for part in header.split(';').skip(1) {
        let Some((k, v)) = part.trim().split_once('=') else {
            continue;
        };
        if k.trim().eq_ignore_ascii_case("filename") {
            let v = v.trim().trim_matches('"');
            let base = v.rsplit('/').next().unwrap_or(v);
            if !base.is_empty() {
                return Some(base.to_string());
            }
        }
    }
    None
}
