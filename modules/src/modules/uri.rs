//! The `uri` module: one HTTP request, its answer as the result (`status`, `content`, `json`,
//! the response headers as lower-case fields), optionally written to `dest`.
//!
//! As ansible-core 2.19's `uri.py`: a request changes nothing (`changed: false`) unless `dest`
//! is written (then `changed: true`, also when the content was the same); `creates`/`removes`
//! end the task before any request (`stdout: skipped, since ...`); a status not in
//! `status_code` fails the task; uri does not support check mode (the task is skipped).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use minijinja::Value;

use super::get_url::{file_common, refuse_scheme, Fetch};
use crate::args::{ArgDef, ArgSpec, ArgType, Args};
use crate::error::LoadError;
use crate::fsops::{self, Kind};
use crate::host::HostState;
use crate::http::{Redirects, Response};
use crate::modules::copy::{plan_file, Common};
use crate::resource::{
    Check, LoadContext, Module, ModuleContext, ModuleError, Outcome, Owned, Resource, TaskArgs,
};

pub struct UriModule;

static SPEC: ArgSpec = ArgSpec {
    module: "uri",
    args: &[
        ArgDef::new("url", ArgType::Str).required(),
        ArgDef::new("method", ArgType::Str),
        ArgDef::new("body", ArgType::Raw),
        ArgDef::new("body_format", ArgType::Str).choices(&["raw", "json", "form-urlencoded"]),
        ArgDef::new("headers", ArgType::Dict),
        ArgDef::new("status_code", ArgType::List),
        ArgDef::new("return_content", ArgType::Bool),
        ArgDef::new("dest", ArgType::Path),
        ArgDef::new("creates", ArgType::Path),
        ArgDef::new("removes", ArgType::Path),
        ArgDef::new("timeout", ArgType::Int),
        ArgDef::new("validate_certs", ArgType::Bool),
        ArgDef::new("url_username", ArgType::Str).aliases(&["user"]),
        ArgDef::new("url_password", ArgType::Str).aliases(&["password"]),
        ArgDef::new("force_basic_auth", ArgType::Bool),
        ArgDef::new("follow_redirects", ArgType::Str)
            .choices(&["all", "no", "none", "safe", "yes"]),
        ArgDef::new("force", ArgType::Bool),
        ArgDef::new("http_agent", ArgType::Str),
        ArgDef::new("use_proxy", ArgType::Bool),
        ArgDef::new("mode", ArgType::Mode),
        ArgDef::new("owner", ArgType::Str),
        ArgDef::new("group", ArgType::Str),
    ],
    free_form: false,
    mutually_exclusive: &[],
    required_one_of: &[],
};

impl Module for UriModule {
    fn spec(&self) -> &'static ArgSpec {
        &SPEC
    }

    fn validate(&self, args: &TaskArgs, ctx: &LoadContext) -> Result<(), LoadError> {
        refuse_scheme(args, ctx, "url")
    }

    fn prepare(&self, args: &Args, ctx: &ModuleContext) -> Result<Box<dyn Resource>, ModuleError> {
        let url = args.str("url").unwrap_or_default();
        crate::http::check_scheme(&url).map_err(|e| ModuleError::new(e.to_string()))?;
        let method = args
            .str("method")
            .unwrap_or_else(|| "GET".into())
            .to_uppercase();
        if method.is_empty() || !method.chars().all(|c| c.is_ascii_uppercase()) {
            return Err(ModuleError::new(
                "Parameter 'method' needs to be a single word in uppercase, like GET or POST.",
            ));
        }
        let mut fetch = Fetch::from_args(args, 30)?;
        fetch.client.redirects = Redirects::parse(
            &args
                .str("follow_redirects")
                .unwrap_or_else(|| "safe".into()),
        )
        .map_err(|e| ModuleError::new(e.to_string()))?;
        let format = args.str("body_format").unwrap_or_else(|| "raw".into());
        let body = match args
            .get("body")
            .filter(|b| !b.is_none() && !b.is_undefined())
        {
            Some(b) => Some(encode_body(b, &format, &mut fetch.headers)?),
            None => {
                default_content_type(&format, &mut fetch.headers);
                None
            }
        };
        let status_codes = match args.get("status_code") {
            Some(v) if !v.is_none() => codes(v)?,
            _ => vec![200],
        };
        Ok(Box::new(Uri {
            url,
            method,
            body,
            fetch,
            status_codes,
            return_content: args.bool_or("return_content", false),
            dest: args.str("dest").map(PathBuf::from),
            creates: args.str("creates").map(PathBuf::from),
            removes: args.str("removes").map(PathBuf::from),
            force: args.bool_or("force", false),
            common: file_common(args, ctx.host.ids())?,
            check_mode: ctx.check_mode,
            host: ctx.host.clone(),
        }))
    }
}

/// The body as bytes: `json` dumps a non-text value, `form-urlencoded` encodes a mapping (or a
/// list of pairs); each sets `Content-Type` unless the task's headers do.
fn encode_body(
    body: &Value,
    format: &str,
    headers: &mut Vec<(String, String)>,
) -> Result<Vec<u8>, ModuleError> {
    default_content_type(format, headers);
    if let Some(text) = body.as_str() {
        return Ok(text.as_bytes().to_vec());
    }
    match format {
        "json" => python_json(body),
        "form-urlencoded" => {
            let pairs = super::get_url::dict_pairs(body).map_err(|_| {
                ModuleError::new("failed to parse body as form_urlencoded: not a mapping")
            })?;
            Ok(pairs
                .iter()
                .map(|(k, v)| format!("{}={}", form_escape(k), form_escape(v)))
                .collect::<Vec<_>>()
                .join("&")
                .into_bytes())
        }
        _ => Ok(crate::args::python_str(body).into_bytes()),
    }
}

/// `json.dumps` with Python's default separators (`, ` and `: `) and `ensure_ascii`.
fn python_json(body: &Value) -> Result<Vec<u8>, ModuleError> {
    use serde::Serialize;
    struct PyFormatter;
    impl serde_json::ser::Formatter for PyFormatter {
        fn begin_array_value<W: ?Sized + std::io::Write>(
            &mut self,
            w: &mut W,
            first: bool,
        ) -> std::io::Result<()> {
            if first {
                Ok(())
            } else {
                w.write_all(b", ")
            }
        }
        fn begin_object_key<W: ?Sized + std::io::Write>(
            &mut self,
            w: &mut W,
            first: bool,
        ) -> std::io::Result<()> {
            if first {
                Ok(())
            } else {
                w.write_all(b", ")
            }
        }
        fn begin_object_value<W: ?Sized + std::io::Write>(
            &mut self,
            w: &mut W,
        ) -> std::io::Result<()> {
            w.write_all(b": ")
        }
        fn write_string_fragment<W: ?Sized + std::io::Write>(
            &mut self,
            w: &mut W,
            fragment: &str,
        ) -> std::io::Result<()> {
            for c in fragment.chars() {
                if c.is_ascii() {
                    w.write_all(&[c as u8])?;
                } else {
                    let mut units = [0u16; 2];
                    for u in c.encode_utf16(&mut units) {
                        write!(w, "\\u{u:04x}")?;
                    }
                }
            }
            Ok(())
        }
    }
    let mut out = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(&mut out, PyFormatter);
    body.serialize(&mut ser)
        .map_err(|e| ModuleError::new(e.to_string()))?;
    Ok(out)
}

fn default_content_type(format: &str, headers: &mut Vec<(String, String)>) {
    let ct = match format {
        "json" => "application/json",
        "form-urlencoded" => "application/x-www-form-urlencoded",
        _ => return,
    };
    if !headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
    {
        headers.push(("Content-Type".into(), ct.into()));
    }
}

/// `urllib.parse.urlencode`'s quoting (`quote_plus`).
fn form_escape(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'.' | b'-' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn codes(v: &Value) -> Result<Vec<u16>, ModuleError> {
    let bad = || ModuleError::new("status_code must be a list of integers");
    let items: Vec<Value> = if let Some(s) = v.as_str() {
        s.split(',').map(|p| Value::from(p.trim())).collect()
    } else if let Ok(n) = i64::try_from(v.clone()) {
        vec![Value::from(n)]
    } else {
        v.try_iter().map_err(|_| bad())?.collect()
    };
    items
        .iter()
        .map(|i| match i.as_str() {
            Some(s) => s.parse::<u16>().map_err(|_| bad()),
            None => i64::try_from(i.clone())
                .ok()
                .and_then(|n| u16::try_from(n).ok())
                .ok_or_else(bad),
        })
        .collect()
}

struct Uri {
    url: String,
    method: String,
    body: Option<Vec<u8>>,
    fetch: Fetch,
    status_codes: Vec<u16>,
    return_content: bool,
    dest: Option<PathBuf>,
    creates: Option<PathBuf>,
    removes: Option<PathBuf>,
    force: bool,
    common: Common,
    check_mode: bool,
    host: Arc<HostState>,
}

impl Uri {
    fn result(&self, resp: &Response, elapsed: u64) -> Outcome {
        let mut out = Outcome::default();
        // Response headers first (as urllib's info), then the module's own fields over them.
        for (k, v) in &resp.headers {
            out.data.insert(k.replace('-', "_"), Value::from(v.clone()));
        }
        out = out
            .with("redirected", resp.url != self.url)
            .with("url", resp.url.clone())
            .with("status", resp.status)
            .with("msg", resp.msg.clone())
            .with("elapsed", elapsed);
        let content_type = resp.header("content-type").unwrap_or("");
        let maybe_json = is_json(content_type);
        if maybe_json {
            if let Ok(js) = serde_json::from_slice::<serde_json::Value>(&resp.body) {
                out = out.with("json", Value::from(minijinja::value::Serde(&js)));
            }
        }
        if self.return_content {
            out = out.with("content", String::from_utf8_lossy(&resp.body).into_owned());
        }
        out
    }
}

/// Ansible's `JSON_CANDIDATES` on the media type's subtype (or its `+suffix`).
fn is_json(content_type: &str) -> bool {
    let media = content_type.split(';').next().unwrap_or("").trim();
    let Some((_, sub)) = media.split_once('/') else {
        return false;
    };
    let sub = sub.rsplit_once('+').map(|(_, s)| s).unwrap_or(sub);
    matches!(sub.to_ascii_lowercase().as_str(), "json" | "javascript")
}

impl Resource for Uri {
    fn check(&self) -> Result<Check, ModuleError> {
        if self.check_mode {
            let out = Outcome::default()
                .with("skipped", true)
                .with("msg", "remote module (uri) does not support check mode");
            return Ok(Check::new(Vec::new(), out));
        }
        if let Some(c) = &self.creates {
            if fsops::lstat(c)?.is_some() {
                let out = Outcome::default()
                    .with("stdout", format!("skipped, since '{}' exists", c.display()));
                return Ok(Check::new(Vec::new(), out));
            }
        }
        if let Some(r) = &self.removes {
            if fsops::lstat(r)?.is_none() {
                let out = Outcome::default().with(
                    "stdout",
                    format!("skipped, since '{}' does not exist", r.display()),
                );
                return Ok(Check::new(Vec::new(), out));
            }
        }
        let started = Instant::now();
        let mut req = self.fetch.request(&self.method, &self.url);
        req.body = self.body.clone();
        if let (Some(d), false) = (&self.dest, self.force) {
            if fsops::stat(d)?.is_some_and(|s| s.kind == Kind::File) {
                req.if_modified_since = std::fs::metadata(d)?.modified().ok();
            }
        }
        let resp = self.fetch.send(&req)?;
        let mut out = self.result(&resp, started.elapsed().as_secs());
        if !self.status_codes.contains(&resp.status) {
            let msg = format!(
                "Status code was {} and not {:?}: {}",
                resp.status, self.status_codes, resp.msg
            );
            out = out.with("msg", msg.clone());
            if !self.return_content {
                out.data.shift_remove("content");
            }
            out.failed = Some(msg);
            return Ok(Check::new(Vec::new(), out));
        }
        let mut changes = Vec::new();
        let mut check_path = None;
        if let Some(d) = &self.dest {
            let path = if fsops::stat(d)?.is_some_and(|s| s.kind == Kind::Dir) {
                d.join(super::get_url::url_filename(&resp.url))
            } else {
                d.clone()
            };
            if resp.status != 304 {
                let content: Arc<[u8]> = Arc::from(resp.body.clone());
                let p = plan_file(&path, &content, 0o644, &self.common, &mut changes)?;
                // Writing dest is a change even with the same content, as in ansible-core.
                out.changed = Some(true);
                check_path = Some(p);
            }
            out = out.with("path", path.display().to_string());
        }
        let mut check = Check::new(changes, out);
        check.path = check_path;
        Ok(check)
    }

    fn apply(&self, check: Check) -> Result<Outcome, ModuleError> {
        fsops::apply_all(&check.changes)?;
        let mut out = check.outcome;
        if let Some(p) = &check.path {
            fsops::path_facts_at(&mut out, p, self.host.ids());
        }
        Ok(out)
    }

    fn owns(&self) -> Vec<Owned> {
        self.dest.iter().map(|d| Owned::Path(d.clone())).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_and_codes() {
        let mut h = Vec::new();
        let body = Value::from(minijinja::value::Serde(
            serde_json::json!({"a b": "c&d", "n": 1}),
        ));
        let enc = encode_body(&body, "form-urlencoded", &mut h).unwrap();
        assert_eq!(String::from_utf8(enc).unwrap(), "a+b=c%26d&n=1");
        assert_eq!(h[0].1, "application/x-www-form-urlencoded");
        let mut h = vec![("content-type".to_string(), "text/x".to_string())];
        let enc = encode_body(&body, "json", &mut h).unwrap();
        assert_eq!(String::from_utf8(enc).unwrap(), r#"{"a b": "c&d", "n": 1}"#);
        let uni = Value::from(vec![Value::from("é"), Value::from(2)]);
        let enc = encode_body(&uni, "json", &mut Vec::new()).unwrap();
        assert_eq!(String::from_utf8(enc).unwrap(), r#"["\u00e9", 2]"#);
        assert_eq!(h.len(), 1);
        assert_eq!(codes(&Value::from("200, 201")).unwrap(), vec![200, 201]);
        assert!(is_json("application/vnd.api+json; charset=utf-8"));
        assert!(!is_json("text/html"));
    }
}
