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

/// Why a repository URL is refused; each names the URL as written (trimmed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RepoUrlError {
    #[error("empty repository URL")]
    Empty,
    #[error("repository URL `{url}` contains a space or a control character")]
    Whitespace { url: String },
    #[error(
        "repository URL `{url}`: unsupported scheme `{scheme}://` (use https://, http://, \
         ssh://, user@host:path, file:// or a path)"
    )]
    UnsupportedScheme { url: String, scheme: String },
    #[error(
        "repository URL `{url}`: a file:// URL needs an absolute path (file:///srv/git/fleet.git)"
    )]
    FileNotAbsolute { url: String },
    /// scp-like `[user@]host:path` without a host.
    #[error("repository URL `{url}`: no host before `:`")]
    NoHostBeforeColon { url: String },
    #[error("repository URL `{url}`: no repository path after `:`")]
    NoPathAfterColon { url: String },
    #[error("repository URL `{url}`: invalid user or host")]
    InvalidUserOrHost { url: String },
    #[error("repository URL `{url}`: no repository path")]
    NoPath { url: String },
    /// `user:password@host`: a secret would end up in logs and status reports.
    #[error(
        "repository URL `{url}`: a password in the URL is refused (it would end up in logs and \
         status reports); put credentials in the file named by `http.credentials_file`, or use \
         `ssh_key` for SSH"
    )]
    Password { url: String },
    #[error("repository URL `{url}`: empty user name before `@`")]
    EmptyUser { url: String },
    #[error("repository URL `{url}`: unclosed `[` in the host")]
    UnclosedBracket { url: String },
    #[error("repository URL `{url}`: invalid host")]
    InvalidHost { url: String },
    #[error("repository URL `{url}`: no host")]
    NoHost { url: String },
    #[error("repository URL `{url}`: invalid port `{port}`")]
    InvalidPort { url: String, port: String },
}

/// A repository location whose form was checked (see [`RepoKind`]); a password in it is refused.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RepoUrl {
    kind: RepoKind,
    url: String,
}

impl RepoUrl {
    /// Checks `text`; a bare path is made absolute against `base`.
    pub fn parse(text: &str, base: &Path) -> Result<RepoUrl, RepoUrlError> {
        let t = text.trim();
        let url = || t.to_string();
        if t.is_empty() {
            return Err(RepoUrlError::Empty);
        }
        if t.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(RepoUrlError::Whitespace { url: url() });
        }
        if let Some((scheme, rest)) = t.split_once("://") {
            let kind = match scheme.to_ascii_lowercase().as_str() {
                "https" => RepoKind::Https,
                "http" => RepoKind::Http,
                "ssh" => RepoKind::Ssh,
                "file" => RepoKind::File,
                other => {
                    return Err(RepoUrlError::UnsupportedScheme {
                        url: url(),
                        scheme: other.to_string(),
                    })
                }
            };
            if kind == RepoKind::File {
                if !rest.starts_with('/') || rest.len() < 2 {
                    return Err(RepoUrlError::FileNotAbsolute { url: url() });
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
                    return Err(RepoUrlError::NoHostBeforeColon { url: url() });
                }
                if path.is_empty() {
                    return Err(RepoUrlError::NoPathAfterColon { url: url() });
                }
                if userhost.contains(':') || userhost.matches('@').count() > 1 {
                    return Err(RepoUrlError::InvalidUserOrHost { url: url() });
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
fn check_authority(text: &str, rest: &str) -> Result<(), RepoUrlError> {
    let url = || text.to_string();
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    if path.is_empty() {
        return Err(RepoUrlError::NoPath { url: url() });
    }
    let hostport = match authority.rsplit_once('@') {
        Some((userinfo, hostport)) => {
            if userinfo.contains(':') {
                return Err(RepoUrlError::Password { url: url() });
            }
            if userinfo.is_empty() {
                return Err(RepoUrlError::EmptyUser { url: url() });
            }
            hostport
        }
        None => authority,
    };
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let (host, after) = v6
            .split_once(']')
            .ok_or_else(|| RepoUrlError::UnclosedBracket { url: url() })?;
        match after {
            "" => (host, None),
            p => match p.strip_prefix(':') {
                Some(port) => (host, Some(port)),
                None => return Err(RepoUrlError::InvalidHost { url: url() }),
            },
        }
    } else {
        match hostport.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        }
    };
    if host.is_empty() {
        return Err(RepoUrlError::NoHost { url: url() });
    }
    if let Some(port) = port {
        if !matches!(port.parse::<u16>(), Ok(p) if p != 0) {
            return Err(RepoUrlError::InvalidPort {
                url: url(),
                port: port.to_string(),
            });
        }
    }
    Ok(())
}

impl FromStr for RepoUrl {
    type Err = RepoUrlError;
    /// As on the command line: a relative path is resolved against the current directory.
    fn from_str(s: &str) -> Result<RepoUrl, RepoUrlError> {
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
