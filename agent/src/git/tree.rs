//! A commit's tree as a [`Source`]: files read straight from the object database.

use std::io;
use std::sync::Mutex;

use gitops_modules::source::{EscapeError, RepoPath, Source, SourceEntry, SourceError, SourceKind};
use gix::objs::tree::EntryMode;
use gix::ObjectId;

use super::error::chain;

/// Reads the tree of one commit. Symlinks in the tree (mode 120000) are refused as escapes: a
/// `src` can never follow one, whatever it points to. Submodules (gitlinks) are refused too.
pub struct TreeSource {
    /// `gix::Repository` is `Send` but not `Sync`; lookups are short, a mutex is enough.
    repo: Mutex<gix::Repository>,
    tree: ObjectId,
    label: String,
}

/// What a path names in the tree.
enum Found {
    Tree(ObjectId),
    Blob { id: ObjectId, executable: bool },
}

fn io_err(path: &RepoPath, kind: io::ErrorKind, msg: impl Into<String>) -> SourceError {
    SourceError::Io {
        path: path.to_string(),
        source: io::Error::new(kind, msg.into()),
    }
}

fn gix_err(path: &RepoPath) -> impl FnOnce(gix::Error) -> SourceError + '_ {
    move |e| io_err(path, io::ErrorKind::Other, chain(&e))
}

impl TreeSource {
    pub(super) fn new(repo: gix::Repository, tree: ObjectId, label: String) -> TreeSource {
        TreeSource {
            repo: Mutex::new(repo),
            tree,
            label,
        }
    }

    /// The tree this source reads.
    pub fn tree_id(&self) -> ObjectId {
        self.tree
    }

    fn with_repo<T>(
        &self,
        path: &RepoPath,
        f: impl FnOnce(&gix::Repository) -> Result<T, SourceError>,
    ) -> Result<T, SourceError> {
        let repo = self
            .repo
            .lock()
            .map_err(|_| io_err(path, io::ErrorKind::Other, "repository lock poisoned"))?;
        f(&repo)
    }

    /// Refuses what a source must never hand out: symlinks and submodules.
    fn check_mode(path: &RepoPath, mode: EntryMode) -> Result<(), SourceError> {
        if mode.is_link() {
            return Err(EscapeError(path.to_string()).into());
        }
        if mode.is_commit() {
            return Err(io_err(
                path,
                io::ErrorKind::Unsupported,
                "is a submodule, which a playbook source cannot read",
            ));
        }
        Ok(())
    }

    /// Walks the path one component at a time, so that a symlink anywhere on the way is refused.
    fn find(&self, repo: &gix::Repository, path: &RepoPath) -> Result<Option<Found>, SourceError> {
        let mut current = Found::Tree(self.tree);
        let mut walked = RepoPath::root();
        for name in path.as_str().split('/').filter(|c| !c.is_empty()) {
            let Found::Tree(tree_id) = current else {
                // A file used as a directory.
                return Ok(None);
            };
            walked = walked.join(name)?;
            let tree = repo.find_tree(tree_id).map_err(gix_err(path))?;
            let Some(entry) = tree.find_entry(name) else {
                return Ok(None);
            };
            let mode = entry.mode();
            Self::check_mode(&walked, mode)?;
            current = if mode.is_tree() {
                Found::Tree(entry.object_id())
            } else {
                Found::Blob {
                    id: entry.object_id(),
                    executable: mode.is_executable(),
                }
            };
        }
        Ok(Some(current))
    }
}

impl Source for TreeSource {
    fn read(&self, path: &RepoPath) -> Result<Option<Vec<u8>>, SourceError> {
        self.with_repo(path, |repo| match self.find(repo, path)? {
            Some(Found::Blob { id, .. }) => {
                let object = repo.find_object(id).map_err(gix_err(path))?;
                Ok(Some(object.detach().data))
            }
            Some(Found::Tree(_)) | None => Ok(None),
        })
    }

    fn kind(&self, path: &RepoPath) -> Result<Option<SourceKind>, SourceError> {
        self.with_repo(path, |repo| {
            Ok(self.find(repo, path)?.map(|found| match found {
                Found::Tree(_) => SourceKind::Dir,
                Found::Blob { .. } => SourceKind::File,
            }))
        })
    }

    fn list(&self, path: &RepoPath) -> Result<Vec<SourceEntry>, SourceError> {
        self.with_repo(path, |repo| {
            let tree_id = match self.find(repo, path)? {
                None => return Ok(Vec::new()),
                Some(Found::Blob { .. }) => {
                    return Err(io_err(
                        path,
                        io::ErrorKind::NotADirectory,
                        "not a directory",
                    ))
                }
                Some(Found::Tree(id)) => id,
            };
            let tree = repo.find_tree(tree_id).map_err(gix_err(path))?;
            let decoded = tree.decode().map_err(gix_err(path))?;
            let mut out = Vec::with_capacity(decoded.entries.len());
            for entry in &decoded.entries {
                let name = String::from_utf8_lossy(entry.filename).into_owned();
                Self::check_mode(&path.join(&name)?, entry.mode)?;
                let is_dir = entry.mode.is_tree();
                out.push(SourceEntry {
                    name,
                    kind: if is_dir {
                        SourceKind::Dir
                    } else {
                        SourceKind::File
                    },
                    executable: !is_dir && entry.mode.is_executable(),
                });
            }
            // Git sorts a directory `a` as `a/`; the contract is plain name order.
            out.sort_by(|a, b| a.name.cmp(&b.name));
            Ok(out)
        })
    }

    fn is_executable(&self, path: &RepoPath) -> Result<bool, SourceError> {
        self.with_repo(path, |repo| {
            Ok(matches!(
                self.find(repo, path)?,
                Some(Found::Blob {
                    executable: true,
                    ..
                })
            ))
        })
    }

    fn describe(&self) -> String {
        self.label.clone()
    }
}
