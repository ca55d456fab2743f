//! The Git layer: one bare repository under the state directory holding the host's branch (as
//! `refs/remotes/origin/<branch>`) and its status branch (`refs/heads/<status branch>`, plus
//! `refs/remotes/origin/<status branch>` for the remote tip last seen).
//!
//! - fetch: gix, protocol v2 with the branch as `ref-prefix`, no tags, depth 1 the first time;
//! - read: [`TreeSource`] reads a commit's tree from the object database, no worktree ever;
//! - status: a commit written with gix (`commit_as`), pushed through [`StatusPush`]: by default
//!   [`NativePush`] (gix-transport receive-pack, no `git` needed for ssh/http); the tests keep a
//!   `git push` client beside it to check the server side.
//!
//! Everything here is blocking: run it on a worker thread.

mod error;
mod history;
mod native_push;
mod push;
mod transport;
mod tree;

#[cfg(test)]
pub(crate) mod tests;

use std::path::{Path, PathBuf};
use std::sync::Mutex;

pub use error::{Cause, GitError, PushError, RemoteKind};
pub use gix::ObjectId;
pub use native_push::NativePush;
pub use push::{PushRequest, PushResult, StatusPush};
pub use transport::install_tls_provider;
/// The ssh command line gix would run; public for the tests' `git push` client.
#[doc(hidden)]
pub use transport::ssh_command;
pub use transport::{CaFileError, CaFileProblem, HttpOptionsError};
pub use tree::TreeSource;

use error::repo_err;
use gix::refs::transaction::PreviousValue;
use history::{agent_signature, find_commit, rebase_status, tree_of, walk_to, Walk};
use transport::fetch_ref;
#[cfg(test)]
use transport::http_options;

/// How to reach the remote: SSH key and known_hosts for ssh://, a user and password (or token)
/// for http(s)://, extra CA certificates for https://.
#[derive(Debug, Clone, Default)]
pub struct FetchOptions {
    pub ssh_key: Option<PathBuf>,
    pub known_hosts: Option<PathBuf>,
    pub http_credentials: Option<(String, String)>,
    /// A PEM file of CA certificates trusted for https:// in addition to the system's
    /// (`http.ca_file`: a private CA).
    pub http_ca_file: Option<PathBuf>,
}

/// The result of [`GitRepo::fetch`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchOutcome {
    /// The branch's tip as the remote has it now.
    pub tip: ObjectId,
    /// The tip we had before, `None` on the first fetch.
    pub previous: Option<ObjectId>,
    /// Whether the tip moved (new commits, or a force-push to any other commit).
    pub changed: bool,
}

/// The result of [`GitRepo::push_status`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushOutcome {
    /// The remote status branch now points to `id`. `rebased`: the remote had moved, so the status
    /// commit was re-created on the remote tip first.
    Pushed { id: ObjectId, rebased: bool },
    /// The remote already had the local status tip (or the same tree).
    UpToDate,
    /// There is no local status commit yet.
    NothingToPush,
}

impl std::fmt::Display for PushOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PushOutcome::Pushed { id, rebased } => {
                write!(f, "pushed {}", id.to_hex_with_len(7))?;
                if *rebased {
                    write!(f, ", rebased on the remote tip")?;
                }
                Ok(())
            }
            PushOutcome::UpToDate => write!(f, "up to date"),
            PushOutcome::NothingToPush => write!(f, "nothing to push"),
        }
    }
}

/// The ref a remote branch is fetched into.
fn tracking_ref(branch: &str) -> String {
    format!("refs/remotes/origin/{branch}")
}

fn local_ref(branch: &str) -> String {
    format!("refs/heads/{branch}")
}

fn check_branch(branch: &str) -> Result<(), GitError> {
    let full = local_ref(branch);
    gix::validate::reference::name(full.as_str().into())
        .map(|_| ())
        .map_err(|e| GitError::InvalidBranch {
            branch: branch.to_string(),
            source: Box::new(e),
        })
}

/// A bare repository under the state dir holding the host's branch (and its status branch).
pub struct GitRepo {
    repo: gix::ThreadSafeRepository,
    dir: PathBuf,
    pusher: Box<dyn StatusPush>,
    /// The URL of the last fetch, for [`TreeSource::describe`].
    origin: Mutex<Option<String>>,
}

impl GitRepo {
    /// Opens the bare repository at `dir`, or creates it when `dir` is missing or empty. The
    /// repository is opened isolated: no system or user git config and no `GIT_*` environment
    /// changes what the agent does.
    pub fn open_or_init(dir: &Path) -> Result<GitRepo, GitError> {
        let open_err = |e: gix::Error| GitError::Open {
            dir: dir.to_path_buf(),
            source: Box::new(e),
        };
        let empty = match std::fs::read_dir(dir) {
            Ok(mut entries) => entries.next().is_none(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => true,
            Err(e) => {
                return Err(GitError::Open {
                    dir: dir.to_path_buf(),
                    source: Box::new(e),
                })
            }
        };
        let repo = if empty {
            std::fs::create_dir_all(dir).map_err(|e| GitError::Open {
                dir: dir.to_path_buf(),
                source: Box::new(e),
            })?;
            gix::ThreadSafeRepository::init_opts(
                dir,
                gix::create::Kind::Bare,
                gix::create::Options::default(),
                gix::open::Options::isolated(),
            )
            .map_err(open_err)?
        } else {
            gix::ThreadSafeRepository::open_opts(dir, gix::open::Options::isolated())
                .map_err(open_err)?
        };
        if repo.work_dir().is_some() {
            return Err(GitError::Open {
                dir: dir.to_path_buf(),
                source: "not a bare repository".into(),
            });
        }
        Ok(GitRepo {
            repo,
            dir: dir.to_path_buf(),
            pusher: Box::new(NativePush),
            origin: Mutex::new(None),
        })
    }

    /// Replaces how status commits are pushed (the default is [`NativePush`]; the tests push
    /// through `git push` too, to compare).
    pub fn set_status_pusher(&mut self, pusher: Box<dyn StatusPush>) {
        self.pusher = pusher;
    }

    /// Whether the local status branch has a commit the remote has not got yet (a push that
    /// failed and waits for the next run).
    pub fn status_pending(&self, status_branch: &str) -> Result<bool, GitError> {
        check_branch(status_branch)?;
        let repo = self.local(None)?;
        let local = Self::tip(&repo, &local_ref(status_branch))?;
        let pushed = Self::tip(&repo, &tracking_ref(status_branch))?;
        Ok(local.is_some() && local != pushed)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A repository handle for this thread, with the transport settings of `opts` applied in
    /// memory (nothing is written to the repository's config).
    fn local(&self, opts: Option<&FetchOptions>) -> Result<gix::Repository, GitError> {
        let mut repo = self.repo.to_thread_local();
        if let Some(opts) = opts {
            let cmd = ssh_command(opts).map_err(repo_err("quoting the ssh command"))?;
            let mut cfg = repo.config_snapshot_mut();
            cfg.set_value(&gix::config::tree::Core::SSH_COMMAND, cmd.as_str())
                .map_err(repo_err("setting core.sshCommand"))?;
            // Skips gix's `ssh -G` probe for the variant.
            cfg.set_value(&gix::config::tree::Ssh::VARIANT, "ssh")
                .map_err(repo_err("setting ssh.variant"))?;
            cfg.commit()
                .map_err(repo_err("applying transport config"))?;
        }
        Ok(repo)
    }

    fn tip(repo: &gix::Repository, name: &str) -> Result<Option<ObjectId>, GitError> {
        let reference = repo
            .try_find_reference(name)
            .map_err(repo_err(format!("reading {name}")))?;
        match reference {
            None => Ok(None),
            Some(mut r) => Ok(Some(
                r.peel_to_id()
                    .map_err(repo_err(format!("resolving {name}")))?
                    .detach(),
            )),
        }
    }

    /// Fetch only `refs/heads/<branch>` from `url` (protocol v2 ref-prefix, no tags), depth 1 the
    /// first time and without a depth afterwards; returns the tip and whether it moved.
    ///
    /// Note: after a force-push to a commit unrelated to what is here, a fetch without a depth
    /// brings that commit's whole history (as `git fetch` in a shallow clone does).
    pub fn fetch(
        &self,
        url: &str,
        branch: &str,
        opts: &FetchOptions,
    ) -> Result<FetchOutcome, GitError> {
        check_branch(branch)?;
        let repo = self.local(Some(opts))?;
        let tracking = tracking_ref(branch);
        let previous = Self::tip(&repo, &tracking)?;
        let shallow = match previous {
            None => gix::remote::fetch::Shallow::DepthAtRemote(1.try_into().expect("non-zero")),
            Some(_) => gix::remote::fetch::Shallow::NoChange,
        };
        fetch_ref(&repo, url, branch, opts, shallow)?;
        let tip = Self::tip(&repo, &tracking)?.ok_or_else(|| GitError::BranchNotFound {
            url: url.to_string(),
            branch: branch.to_string(),
        })?;
        if let Ok(mut origin) = self.origin.lock() {
            *origin = Some(url.to_string());
        }
        Ok(FetchOutcome {
            tip,
            previous,
            changed: previous != Some(tip),
        })
    }

    /// Is `old` an ancestor of (or equal to) `new`? Walks parents from `new`; when the walk reaches
    /// the shallow boundary (or a missing parent) before finding `old`, the branch's whole history
    /// is fetched (a full unshallow of that branch: simple, and the agent's branches are small)
    /// and the walk is repeated.
    ///
    /// `opts` are the transport settings for that deepening fetch (an addition to the original
    /// contract: without them a deepen over ssh:// or authenticated http(s):// cannot work).
    pub fn is_ancestor(
        &self,
        url: &str,
        branch: &str,
        old: ObjectId,
        new: ObjectId,
        opts: &FetchOptions,
    ) -> Result<bool, GitError> {
        if old == new {
            return Ok(true);
        }
        let repo = self.local(Some(opts))?;
        match walk_to(&repo, old, new)? {
            Walk::Found => Ok(true),
            Walk::NotFound => Ok(false),
            Walk::Boundary => {
                check_branch(branch)?;
                fetch_ref(
                    &repo,
                    url,
                    branch,
                    opts,
                    gix::remote::fetch::Shallow::undo(),
                )?;
                // A fresh handle: the shallow file changed.
                let repo = self.local(None)?;
                Ok(matches!(walk_to(&repo, old, new)?, Walk::Found))
            }
        }
    }

    /// The commit's signature: (armored signature bytes, signed payload bytes) — the payload is
    /// the commit object minus its `gpgsig` header, what git signed — and the committer's unix
    /// time. `None` when unsigned.
    #[allow(clippy::type_complexity)]
    pub fn commit_signature(
        &self,
        commit: ObjectId,
    ) -> Result<(Option<(Vec<u8>, Vec<u8>)>, i64), GitError> {
        let repo = self.local(None)?;
        let c = find_commit(&repo, commit)?;
        let context = || format!("reading commit {commit}");
        let time = c.committer().map_err(repo_err(context()))?.seconds();
        let signature = c
            .signature()
            .map_err(repo_err(context()))?
            .map(|(sig, signed)| (sig.to_vec(), signed.to_bstring().into()));
        Ok((signature, time))
    }

    /// A [`gitops_modules::source::Source`] over the commit's tree, read from the object database.
    pub fn tree_source(&self, commit: ObjectId) -> Result<TreeSource, GitError> {
        let mut repo = self.local(None)?;
        repo.object_cache_size_if_unset(4 * 1024 * 1024);
        let tree = find_commit(&repo, commit)?
            .tree_id()
            .map_err(repo_err(format!("reading the tree of {commit}")))?
            .detach();
        let origin = self
            .origin
            .lock()
            .ok()
            .and_then(|o| o.clone())
            .unwrap_or_else(|| self.dir.display().to_string());
        let short = commit.to_hex_with_len(12).to_string();
        Ok(TreeSource::new(repo, tree, format!("{origin}@{short}")))
    }

    /// Writes `files` (path → bytes) as the whole tree of a new commit on
    /// `refs/heads/<status_branch>`, parent the current local status tip (or, with none, the remote
    /// status tip last seen). `Ok(None)` when the tree is the parent's: no empty commits.
    pub fn record_status(
        &self,
        status_branch: &str,
        files: &[(&str, &[u8])],
        message: &str,
        host: &str,
    ) -> Result<Option<ObjectId>, GitError> {
        check_branch(status_branch)?;
        let repo = self.local(None)?;
        let refname = local_ref(status_branch);
        let parent = match Self::tip(&repo, &refname)? {
            Some(p) => Some(p),
            None => Self::tip(&repo, &tracking_ref(status_branch))?,
        };
        let mut editor = repo
            .edit_tree(ObjectId::empty_tree(repo.object_hash()))
            .map_err(repo_err("building the status tree"))?;
        for (path, bytes) in files {
            let clean = gitops_modules::source::RepoPath::new(path)
                .map_err(repo_err("building the status tree"))?;
            if clean.as_str().is_empty() {
                return Err(GitError::Repo {
                    context: "building the status tree".into(),
                    source: format!("empty file name `{path}`").into(),
                });
            }
            let blob = repo
                .write_blob(bytes)
                .map_err(repo_err(format!("writing status file {path}")))?
                .detach();
            editor
                .upsert(clean.as_str(), gix::objs::tree::EntryKind::Blob, blob)
                .map_err(repo_err(format!("adding status file {path}")))?;
        }
        let tree = editor
            .write()
            .map_err(repo_err("writing the status tree"))?
            .detach();
        if let Some(p) = parent {
            if tree_of(&repo, p)? == tree {
                return Ok(None);
            }
        }
        let sig = agent_signature(host);
        let mut t1 = gix::date::parse::TimeBuf::default();
        let mut t2 = gix::date::parse::TimeBuf::default();
        let id = repo
            .commit_as(
                sig.to_ref(&mut t1),
                sig.to_ref(&mut t2),
                refname.as_str(),
                message,
                tree,
                parent,
            )
            .map_err(repo_err(format!("committing to {refname}")))?;
        Ok(Some(id.detach()))
    }

    /// Pushes the local status branch to `url`, compare-and-swap on the remote tip last seen (see
    /// [`StatusPush`]). When the remote moved (someone else pushed), the remote branch is fetched,
    /// the status commit re-created on its tip, and the push retried once.
    ///
    /// `opts`: the transport settings, as for [`GitRepo::fetch`] (an addition to the original
    /// contract, needed for ssh:// and authenticated http(s)://).
    pub fn push_status(
        &self,
        url: &str,
        status_branch: &str,
        opts: &FetchOptions,
    ) -> Result<PushOutcome, GitError> {
        check_branch(status_branch)?;
        let repo = self.local(Some(opts))?;
        let refname = local_ref(status_branch);
        let tracking = tracking_ref(status_branch);
        let Some(mut local) = Self::tip(&repo, &refname)? else {
            return Ok(PushOutcome::NothingToPush);
        };
        let mut expected = Self::tip(&repo, &tracking)?;
        let mut rebased = false;
        let mut last_refusal = String::new();
        for attempt in 0..2 {
            if let Some(old) = expected {
                if old == local {
                    return Ok(PushOutcome::UpToDate);
                }
                // Only ever fast-forward what the remote had: otherwise re-create on its tip.
                if !matches!(walk_to(&repo, old, local)?, Walk::Found) {
                    local = rebase_status(&repo, &refname, local, old)?;
                    rebased = true;
                    if local == old {
                        return Ok(PushOutcome::UpToDate);
                    }
                }
            }
            let request = PushRequest {
                git_dir: &self.dir,
                url,
                remote_ref: &refname,
                new: local,
                expected_old: expected,
                opts,
            };
            match self.pusher.push(&request)? {
                PushResult::Pushed | PushResult::UpToDate => {
                    repo.reference(
                        tracking.as_str(),
                        local,
                        PreviousValue::Any,
                        "status pushed",
                    )
                    .map_err(repo_err(format!("updating {tracking}")))?;
                    return Ok(PushOutcome::Pushed { id: local, rebased });
                }
                PushResult::Stale { reason } => {
                    last_refusal = reason;
                    if attempt == 1 {
                        break;
                    }
                    // The remote moved: fetch its status branch and build on it.
                    let shallow = match expected {
                        None => gix::remote::fetch::Shallow::DepthAtRemote(
                            1.try_into().expect("non-zero"),
                        ),
                        Some(_) => gix::remote::fetch::Shallow::NoChange,
                    };
                    match fetch_ref(&repo, url, status_branch, opts, shallow) {
                        Ok(()) => {}
                        Err(GitError::BranchNotFound { .. }) => {
                            if let Some(r) = repo
                                .try_find_reference(tracking.as_str())
                                .map_err(repo_err(format!("reading {tracking}")))?
                            {
                                r.delete()
                                    .map_err(repo_err(format!("deleting {tracking}")))?;
                            }
                        }
                        Err(e) => return Err(e),
                    }
                    expected = Self::tip(&repo, &tracking)?;
                }
            }
        }
        Err(GitError::PushConflict {
            url: url.to_string(),
            branch: status_branch.to_string(),
            reason: last_refusal,
        })
    }
}
