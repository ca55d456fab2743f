//! `password`: a random password kept in a file, so the next run gives the same one.
//!
//! A relative file name is kept under the agent's state directory
//! (`<state_dir>/lookup_password/<name>`), never in the repository (ansible-pull would write it
//! into its checkout, where the next pull may remove it); an absolute name is used as given,
//! unless it is inside the repository. `/dev/null` gives a new password each time and keeps
//! nothing. `encrypt`/`ident` are refused: the agent does not hash passwords here.

use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use minijinja::value::ValueKind;
use minijinja::{Error, Value};
use sha2::Digest;

use super::{err, term_str, Call, Frame};
use crate::source::RepoPath;

/// The directory under the state directory where relative password files are kept.
pub const PASSWORD_DIR: &str = "lookup_password";

const DEFAULT_LENGTH: usize = 20;

#[derive(Debug)]
struct Params {
    length: usize,
    chars: Vec<String>,
    seed: Option<String>,
}

/// Python's `string` module sets a `chars` entry may name.
fn named_set(name: &str) -> Option<&'static str> {
    const LOWER: &str = "abcdefghijklmnopqrstuvwxyz";
    const UPPER: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    Some(match name {
        "ascii_letters" => "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ",
        "ascii_lowercase" => LOWER,
        "ascii_uppercase" => UPPER,
        "digits" => "0123456789",
        "hexdigits" => "0123456789abcdefABCDEF",
        "octdigits" => "01234567",
        "punctuation" => "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~",
        "whitespace" => " \t\n\r\x0b\x0c",
        "printable" => "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~ \t\n\r\x0b\x0c",
        _ => return None,
    })
}

/// A comma-separated `chars` text as ansible-core splits it (`,,` is a comma).
fn split_chars(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    if text.contains(",,") {
        out.push(",".to_string());
    }
    out.extend(
        text.replace(",,", ",")
            .split(',')
            .filter(|c| !c.is_empty())
            .map(str::to_string),
    );
    out
}

fn candidate_chars(specs: &[String]) -> Vec<char> {
    let mut all = String::new();
    for s in specs {
        all.push_str(named_set(s).unwrap_or(s));
    }
    all.chars().filter(|c| *c != '"' && *c != '\'').collect()
}

fn set_param(p: &mut Params, key: &str, v: &Value) -> Result<(), Error> {
    match key {
        "length" => {
            let text = v.to_string();
            p.length = text.trim().parse().map_err(|_| {
                err(format!(
                    "password lookup: `length` must be an integer, got {text}"
                ))
            })?;
        }
        "chars" => {
            p.chars = if v.kind() == ValueKind::Seq {
                v.try_iter()
                    .map(|it| it.map(|c| c.to_string()).collect())
                    .unwrap_or_default()
            } else {
                split_chars(&v.to_string())
            }
        }
        "seed" => p.seed = Some(v.to_string()).filter(|_| !v.is_none()),
        "encrypt" | "ident" => {
            if !v.is_none() {
                return Err(err(format!(
                    "password lookup: `{key}` is not supported by the agent (use the password_hash filter on the plain password)"
                )));
            }
        }
        other => {
            return Err(err(format!(
                "Unrecognized parameter(s) given to password lookup: {other}"
            )))
        }
    }
    Ok(())
}

fn random_password(p: &Params) -> Result<String, Error> {
    let chars = candidate_chars(&p.chars);
    if chars.is_empty() {
        return Err(err("password lookup: no characters to choose from"));
    }
    let n = chars.len() as u64;
    match &p.seed {
        Some(seed) => {
            // The same seed gives the same password (not the one Python's generator gives).
            let digest = sha2::Sha256::digest(seed.as_bytes());
            let mut s = [0u8; 8];
            s.copy_from_slice(&digest[..8]);
            let mut rng = fastrand::Rng::with_seed(u64::from_le_bytes(s));
            Ok((0..p.length)
                .map(|_| chars[rng.usize(..chars.len())])
                .collect())
        }
        None => {
            let mut urandom = std::fs::File::open("/dev/urandom")
                .map_err(|e| err(format!("password lookup: /dev/urandom: {e}")))?;
            let mut out = String::with_capacity(p.length);
            // Rejection sampling keeps every character equally likely.
            let limit = u64::MAX - u64::MAX % n;
            while out.chars().count() < p.length {
                let mut b = [0u8; 8];
                urandom
                    .read_exact(&mut b)
                    .map_err(|e| err(format!("password lookup: /dev/urandom: {e}")))?;
                let x = u64::from_le_bytes(b);
                if x < limit {
                    out.push(chars[(x % n) as usize]);
                }
            }
            Ok(out)
        }
    }
}

/// Where the password named `relpath` is kept; None for `/dev/null`.
fn store_path(relpath: &str, fr: &Frame) -> Result<Option<PathBuf>, Error> {
    if relpath == "/dev/null" {
        return Ok(None);
    }
    if relpath.starts_with('/') {
        let prefix = fr.playbook_dir.trim_end_matches('/');
        if relpath == prefix || relpath.starts_with(&format!("{prefix}/")) {
            return Err(err(format!(
                "password lookup: `{relpath}` is inside the repository; passwords are kept out of it (use a relative name: it is kept under the agent's state directory)"
            )));
        }
        return Ok(Some(PathBuf::from(relpath)));
    }
    let rel = RepoPath::new(relpath).map_err(|e| err(format!("password lookup: {e}")))?;
    let Some(state) = fr.state_dir else {
        return Err(err(format!(
            "password lookup: `{relpath}` is a relative name, kept under the agent's state directory, and this run has none (set state_dir)"
        )));
    };
    Ok(Some(state.join(PASSWORD_DIR).join(rel.as_str())))
}

/// The stored password of a file's content (`<password> salt=<salt> ident=<ident>`).
fn stored_password(content: &str) -> &str {
    match content.rfind(" salt=") {
        Some(i) => &content[..i],
        None => content,
    }
}

fn write_password(path: &Path, password: &str) -> Result<(), Error> {
    let io = |e: std::io::Error| err(format!("password lookup: {}: {e}", path.display()));
    if let Some(dir) = path.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(io)?;
    f.write_all(format!("{password}\n").as_bytes()).map_err(io)
}

pub(super) fn run(terms: Vec<Value>, call: &Call, fr: &Frame) -> Result<Vec<Value>, Error> {
    let mut out = Vec::with_capacity(terms.len());
    for t in &terms {
        let mut p = Params {
            length: DEFAULT_LENGTH,
            chars: vec!["ascii_letters".into(), "digits".into(), ".,:-_".into()],
            seed: None,
        };
        for key in ["length", "chars", "seed", "encrypt", "ident"] {
            if let Some(v) = call.kwargs.get::<Option<Value>>(key)? {
                set_param(&mut p, key, &v)?;
            }
        }
        let term = term_str(t, "password")?;
        let (relpath, params) = match term.split_once(' ') {
            Some((path, rest)) => (path.to_string(), rest.to_string()),
            None => (term.clone(), String::new()),
        };
        if !params.trim().is_empty() {
            let pairs = crate::args::parse_kv(&params, false)
                .map_err(|e| err(format!("password lookup: cannot parse {params:?}: {e}")))?;
            for (k, v) in pairs {
                set_param(&mut p, &k, &Value::from(v))?;
            }
        }
        let path = store_path(&relpath, fr)?;
        let existing = match &path {
            Some(path) if path.exists() => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| err(format!("password lookup: {}: {e}", path.display())))?;
                Some(stored_password(text.trim_end()).to_string())
            }
            _ => None,
        };
        let password = match existing {
            Some(pw) => pw,
            None => {
                let pw = random_password(&p)?;
                if let Some(path) = &path {
                    write_password(path, &pw)?;
                }
                pw
            }
        };
        out.push(Value::from(password));
    }
    Ok(out)
}

#[cfg(test)]
pub(super) fn test_password(length: usize, chars: &str, seed: Option<&str>) -> String {
    random_password(&Params {
        length,
        chars: split_chars(chars),
        seed: seed.map(str::to_string),
    })
    .unwrap_or_default()
}
