//! Repository URLs (`repo`, `status.repo`) and making paths absolute.

use std::fmt;
use std::path::{Component, Path, PathBuf};
use std::str::FromStr;

/// How a repository is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RepoKind {
    /// `https://host/path`
    Https,
    /// `http://host/path`
    Http,
    /// `ssh://[user@]host[:port]/path`
    Ssh,
    /// scp-like SSH: `[user@]host:path`
    Scp,
    /// `file:///path`
    File,
    /// A local path, made absolute.
    Path,
}

/// A repository location whose form was checked (see [`RepoKind`]); a password in it is refused.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RepoUrl {
    kind: RepoKind,
    url: String,
}

impl RepoUrl {
    /// Checks `text`; a bare path is made absolute against `base`.
    pub fn parse(text: &str, base: &Path) -> Result<RepoUrl, String> {
        let t = text.trim();
        if t.is_empty() {
            return Err("empty repository URL".to_string());
        }
        if t.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!(
                "repository URL `{t}` contains a space or a control character"
            ));
        }
        if let Some((scheme, rest)) = t.split_once("://") {
            let kind = match scheme.to_ascii_lowercase().as_str() {
                "https" => RepoKind::Https,
                "http" => RepoKind::Http,
                "ssh" => RepoKind::Ssh,
                "file" => RepoKind::File,
                other => {
                    return Err(format!(
                        "repository URL `{t}`: unsupported scheme `{other}://` (use https://, \
                         http://, ssh://, user@host:path, file:// or a path)"
                    ))
                }
            };
            if kind == RepoKind::File {
                if !rest.starts_with('/') || rest.len() < 2 {
                    return Err(format!(
                        "repository URL `{t}`: a file:// URL needs an absolute path \
                         (file:///srv/git/fleet.git)"
                    ));
                }
            } else {
                check_authority(t, rest)?;
            }
            return Ok(RepoUrl {
                kind,
                url: t.to_string(),
            });
        }
        // Git's rule: a colon before the first slash makes it scp-like SSH.
        if let Some(colon) = t.find(':') {
            if t.find('/').is_none_or(|slash| colon < slash) {
                let (userhost, path) = (&t[..colon], &t[colon + 1..]);
                let host = userhost.rsplit_once('@').map_or(userhost, |(_, h)| h);
                if host.is_empty() || userhost.starts_with('@') {
                    return Err(format!("repository URL `{t}`: no host before `:`"));
                }
                if path.is_empty() {
                    return Err(format!(
                        "repository URL `{t}`: no repository path after `:`"
                    ));
                }
                if userhost.contains(':') || userhost.matches('@').count() > 1 {
                    return Err(format!("repository URL `{t}`: invalid user or host"));
                }
                return Ok(RepoUrl {
                    kind: RepoKind::Scp,
                    url: t.to_string(),
                });
            }
        }
        let path = absolute(base, Path::new(t));
        Ok(RepoUrl {
            kind: RepoKind::Path,
            url: path.to_string_lossy().into_owned(),
        })
    }

    pub fn kind(&self) -> RepoKind {
        self.kind
    }

    /// The URL as Git is given it (a local path as an absolute path).
    pub fn as_str(&self) -> &str {
        &self.url
    }

    /// The repository is on this machine (`file://` or a path).
    pub fn is_local(&self) -> bool {
        matches!(self.kind, RepoKind::File | RepoKind::Path)
    }
}

/// Checks `[user@]host[:port]/path` after `scheme://`.
fn check_authority(url: &str, rest: &str) -> Result<(), String> {
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    if path.is_empty() {
        return Err(format!("repository URL `{url}`: no repository path"));
    }
    let hostport = match authority.rsplit_once('@') {
        Some((userinfo, hostport)) => {
            if userinfo.contains(':') {
                return Err(format!(
                    "repository URL `{url}`: a password in the URL is refused (it would end up \
                     in logs and status reports); put credentials in the file named by \
                     `http.credentials_file`, or use `ssh_key` for SSH"
                ));
            }
            if userinfo.is_empty() {
                return Err(format!(
                    "repository URL `{url}`: empty user name before `@`"
                ));
            }
            hostport
        }
        None => authority,
    };
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let (host, after) = v6
            .split_once(']')
            .ok_or_else(|| format!("repository URL `{url}`: unclosed `[` in the host"))?;
        match after {
            "" => (host, None),
            p => match p.strip_prefix(':') {
                Some(port) => (host, Some(port)),
                None => return Err(format!("repository URL `{url}`: invalid host")),
            },
        }
    } else {
        match hostport.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        }
    };
    if host.is_empty() {
        return Err(format!("repository URL `{url}`: no host"));
    }
    if let Some(port) = port {
        if !matches!(port.parse::<u16>(), Ok(p) if p != 0) {
            return Err(format!("repository URL `{url}`: invalid port `{port}`"));
        }
    }
    Ok(())
}

impl FromStr for RepoUrl {
    type Err = String;
    /// As on the command line: a relative path is resolved against the current directory.
    fn from_str(s: &str) -> Result<RepoUrl, String> {
        RepoUrl::parse(s, &current_dir())
    }
}

impl fmt::Display for RepoUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.url)
    }
}

pub(crate) fn current_dir() -> PathBuf {
    std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"))
}

/// `path` made absolute against `base` (itself made absolute against the current directory),
/// lexically: `.` components dropped, `..` kept (the file system decides what it means).
pub(crate) fn absolute(base: &Path, path: &Path) -> PathBuf {
    let joined = if path.is_absolute() {
        path.to_path_buf()
    } else {
        base.join(path)
    };
    let joined = std::path::absolute(&joined).unwrap_or(joined);
    joined
        .components()
        .filter(|c| !matches!(c, Component::CurDir))
        .collect()
}
