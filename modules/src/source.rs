//! Where a playbook and its files come from: a repository, read by repository-relative path.
//!
//! The engine never touches the playbook's files by host path: a `Source` is either a directory
//! (`converge --playbook-dir`) or, in the agent, a commit's tree read from Git's object database.
//! Every path goes through [`RepoPath`], so a `src` can never name something outside the
//! repository.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// A normalized path inside the repository: relative, `/`-separated, no `.`/`..` components.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RepoPath(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("path `{0}` escapes the repository")]
pub struct EscapeError(pub String);

impl RepoPath {
    pub fn root() -> RepoPath {
        RepoPath(String::new())
    }

    /// Normalizes a relative path; `..` that climbs above the root and absolute paths are errors.
    pub fn new(path: &str) -> Result<RepoPath, EscapeError> {
        RepoPath::root().join(path)
    }

    /// Resolves `rel` against this path (a directory).
    pub fn join(&self, rel: &str) -> Result<RepoPath, EscapeError> {
        if rel.starts_with('/') {
            return Err(EscapeError(rel.to_string()));
        }
        let mut parts: Vec<&str> = self.0.split('/').filter(|p| !p.is_empty()).collect();
        for part in rel.split('/') {
            match part {
                "" | "." => {}
                ".." => {
                    if parts.pop().is_none() {
                        return Err(EscapeError(rel.to_string()));
                    }
                }
                p => parts.push(p),
            }
        }
        Ok(RepoPath(parts.join("/")))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn parent(&self) -> RepoPath {
        match self.0.rfind('/') {
            Some(i) => RepoPath(self.0[..i].to_string()),
            None => RepoPath::root(),
        }
    }

    pub fn file_name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or("")
    }
}

impl fmt::Display for RepoPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            f.write_str(".")
        } else {
            f.write_str(&self.0)
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error(transparent)]
    Escape(#[from] EscapeError),
    #[error("{path}: {source}")]
    Io { path: String, source: io::Error },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    File,
    Dir,
}

/// One entry of a source directory listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceEntry {
    pub name: String,
    pub kind: SourceKind,
    /// The file has an executable bit in the repository (Git's 100755).
    pub executable: bool,
}

/// Read access to the repository holding the playbook.
pub trait Source: Send + Sync {
    /// A file's bytes, or `None` when there is no such file.
    fn read(&self, path: &RepoPath) -> Result<Option<Vec<u8>>, SourceError>;
    /// What is at `path`, or `None` when nothing.
    fn kind(&self, path: &RepoPath) -> Result<Option<SourceKind>, SourceError>;
    /// The entries of a directory, sorted by name.
    fn list(&self, path: &RepoPath) -> Result<Vec<SourceEntry>, SourceError>;
    /// Whether a file has an executable bit in the repository (Git's 100755).
    fn is_executable(&self, path: &RepoPath) -> Result<bool, SourceError>;
    /// For messages: where this source is.
    fn describe(&self) -> String;
}

/// A playbook directory on the local filesystem.
pub struct DirSource {
    root: PathBuf,
    /// Canonical host paths of directories already resolved: a converge looks up hundreds of
    /// files in the same few directories.
    dirs: std::sync::Mutex<std::collections::HashMap<String, Option<PathBuf>>>,
}

impl DirSource {
    pub fn new(root: impl Into<PathBuf>) -> io::Result<DirSource> {
        let root = std::fs::canonicalize(root.into())?;
        Ok(DirSource {
            root,
            dirs: Default::default(),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The host path of `path`, after checking that symlinks inside the directory do not lead
    /// out of it. `None` when nothing exists there.
    fn resolve(&self, path: &RepoPath) -> Result<Option<PathBuf>, SourceError> {
        let io_err = |e: io::Error| SourceError::Io {
            path: path.to_string(),
            source: e,
        };
        if path.as_str().is_empty() {
            return Ok(Some(self.root.clone()));
        }
        // The parent directory through the cache, then one lstat of the entry itself; only a
        // symlink there needs a full resolution.
        let parent = path.parent();
        let cached = self
            .dirs
            .lock()
            .ok()
            .and_then(|d| d.get(parent.as_str()).cloned());
        let parent_real = match cached {
            Some(p) => p,
            None => {
                let p = self.canonical(&parent)?;
                if let Ok(mut d) = self.dirs.lock() {
                    d.insert(parent.as_str().to_string(), p.clone());
                }
                p
            }
        };
        let Some(parent_real) = parent_real else {
            return Ok(None);
        };
        let candidate = parent_real.join(path.file_name());
        match std::fs::symlink_metadata(&candidate) {
            Ok(meta) if meta.file_type().is_symlink() => self.canonical(path),
            Ok(_) => Ok(Some(candidate)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err(e)),
        }
    }

    fn canonical(&self, path: &RepoPath) -> Result<Option<PathBuf>, SourceError> {
        let joined = self.root.join(path.as_str());
        match std::fs::canonicalize(&joined) {
            Ok(real) => {
                if real.starts_with(&self.root) {
                    Ok(Some(real))
                } else {
                    Err(EscapeError(path.to_string()).into())
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(SourceError::Io {
                path: path.to_string(),
                source: e,
            }),
        }
    }
}

impl Source for DirSource {
    fn read(&self, path: &RepoPath) -> Result<Option<Vec<u8>>, SourceError> {
        let Some(real) = self.resolve(path)? else {
            return Ok(None);
        };
        if real.is_dir() {
            return Ok(None);
        }
        std::fs::read(&real).map(Some).map_err(|e| SourceError::Io {
            path: path.to_string(),
            source: e,
        })
    }

    fn kind(&self, path: &RepoPath) -> Result<Option<SourceKind>, SourceError> {
        Ok(self.resolve(path)?.map(|real| {
            if real.is_dir() {
                SourceKind::Dir
            } else {
                SourceKind::File
            }
        }))
    }

    fn list(&self, path: &RepoPath) -> Result<Vec<SourceEntry>, SourceError> {
        use std::os::unix::fs::PermissionsExt;
        let io_err = |e| SourceError::Io {
            path: path.to_string(),
            source: e,
        };
        let Some(real) = self.resolve(path)? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&real).map_err(io_err)? {
            let entry = entry.map_err(io_err)?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let child = path.join(&name)?;
            // Resolve each entry so a symlink leading out of the repository is refused here too.
            let Some(real_child) = self.resolve(&child)? else {
                continue;
            };
            let meta = std::fs::metadata(&real_child).map_err(io_err)?;
            out.push(SourceEntry {
                name,
                kind: if meta.is_dir() {
                    SourceKind::Dir
                } else {
                    SourceKind::File
                },
                executable: meta.permissions().mode() & 0o111 != 0,
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn is_executable(&self, path: &RepoPath) -> Result<bool, SourceError> {
        use std::os::unix::fs::PermissionsExt;
        let Some(real) = self.resolve(path)? else {
            return Ok(false);
        };
        let meta = std::fs::metadata(&real).map_err(|e| SourceError::Io {
            path: path.to_string(),
            source: e,
        })?;
        Ok(meta.is_file() && meta.permissions().mode() & 0o111 != 0)
    }

    fn describe(&self) -> String {
        self.root.display().to_string()
    }
}

/// An absolute path into the repository as the host sees it (`role_path`, a path a lookup
/// found: `<source.describe()>/<path>`): the path inside the repository.
pub fn repo_relative<'p>(source: &dyn Source, path: &'p str) -> Option<&'p str> {
    let describe = source.describe();
    let prefix = describe.trim_end_matches('/');
    if !path.starts_with('/') || prefix.is_empty() {
        return None;
    }
    path.strip_prefix(prefix)?.strip_prefix('/')
}

/// Finds a relative `src` as Ansible's search does: for each search directory (role, then
/// playbook), `<dir>/<sub>/<src>` then `<dir>/<src>`. `Ok(None)` when found nowhere; an error
/// when the path escapes the repository.
pub fn find_in(
    source: &dyn Source,
    search: &[RepoPath],
    sub: &str,
    src: &str,
) -> Result<Option<(RepoPath, SourceKind)>, SourceError> {
    let src = repo_relative(source, src).unwrap_or(src);
    if src.starts_with('/') {
        return Err(EscapeError(src.to_string()).into());
    }
    let trimmed = src.trim_end_matches('/');
    let rel = if trimmed.is_empty() { "." } else { trimmed };
    for dir in search {
        for base in [dir.join(sub)?, dir.clone()] {
            let path = base.join(rel)?;
            if let Some(kind) = source.kind(&path)? {
                return Ok(Some((path, kind)));
            }
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_paths_normalize_and_refuse_escapes() {
        assert_eq!(RepoPath::new("a/./b//c").unwrap().as_str(), "a/b/c");
        assert_eq!(RepoPath::new("a/b/../c").unwrap().as_str(), "a/c");
        assert!(RepoPath::new("../x").is_err());
        assert!(RepoPath::new("a/../../x").is_err());
        assert!(RepoPath::new("/etc/passwd").is_err());
        let base = RepoPath::new("roles/web/files").unwrap();
        assert_eq!(
            base.join("x.conf").unwrap().as_str(),
            "roles/web/files/x.conf"
        );
        assert!(base.join("../../../../etc").is_err());
    }

    #[test]
    fn dir_source_refuses_symlinks_out() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), "s").unwrap();
        std::fs::write(dir.path().join("ok"), "fine").unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret"), dir.path().join("leak")).unwrap();
        let src = DirSource::new(dir.path()).unwrap();
        assert_eq!(
            src.read(&RepoPath::new("ok").unwrap()).unwrap().unwrap(),
            b"fine"
        );
        assert!(src
            .read(&RepoPath::new("missing").unwrap())
            .unwrap()
            .is_none());
        assert!(matches!(
            src.read(&RepoPath::new("leak").unwrap()),
            Err(SourceError::Escape(_))
        ));
    }
}
