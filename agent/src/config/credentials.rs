//! HTTP credentials, read from the file `http.credentials_file` names (never from the
//! configuration itself or the command line).

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use gitops_modules::error::{LoadError, Location};

use super::ConfigError;

/// HTTP(S) credentials read from `http.credentials_file`.
///
/// Format: `username=...` and `password=...` lines (both required; the password may be an
/// access token). Blank lines and lines starting with `#` are ignored, whitespace around key and
/// value is trimmed, anything else is an error naming the line. The file must not be readable
/// by other users.
#[derive(Clone, PartialEq, Eq)]
pub struct HttpCredentials {
    pub username: String,
    pub password: String,
}

impl fmt::Debug for HttpCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpCredentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

impl HttpCredentials {
    /// Reads the credentials file.
    pub fn load(path: &Path) -> Result<HttpCredentials, ConfigError> {
        use std::os::unix::fs::PermissionsExt;
        let read_err = |source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        };
        let meta = std::fs::metadata(path).map_err(read_err)?;
        let name: Arc<str> = Arc::from(path.to_string_lossy().as_ref());
        if meta.permissions().mode() & 0o004 != 0 {
            return Err(LoadError::new(format!(
                "{name}: the credentials file is readable by every user; `chmod 600 {name}`"
            ))
            .into());
        }
        let text = std::fs::read_to_string(path).map_err(read_err)?;
        HttpCredentials::parse(&name, &text)
    }

    /// Parses the text of a credentials file; `name` is used in errors.
    pub fn parse(name: &str, text: &str) -> Result<HttpCredentials, ConfigError> {
        let file: Arc<str> = Arc::from(name);
        let at = |line: usize| Location::new(file.clone(), line as u32 + 1);
        let (mut username, mut password) = (None, None);
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((k, v)) = line.split_once('=') else {
                return Err(
                    LoadError::at(at(i), "expected `username=...` or `password=...`").into(),
                );
            };
            let (k, v) = (k.trim(), v.trim().to_string());
            let slot = match k {
                "username" => &mut username,
                "password" => &mut password,
                other => {
                    return Err(LoadError::at(
                        at(i),
                        format!("unknown key `{other}` (expected `username` or `password`)"),
                    )
                    .into())
                }
            };
            if slot.replace(v).is_some() {
                return Err(LoadError::at(at(i), format!("`{k}` given twice")).into());
            }
        }
        match (username, password) {
            (Some(username), Some(password)) => Ok(HttpCredentials { username, password }),
            (None, _) => Err(LoadError::new(format!("{name}: no `username=` line")).into()),
            (_, None) => Err(LoadError::new(format!("{name}: no `password=` line")).into()),
        }
    }
}
