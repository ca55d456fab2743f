//! Pushing the status branch: the `StatusPush` trait. The agent's is the native receive-pack
//! client, `NativePush` (`native_push.rs`); the tests also push through `git push`
//! (`agent/tests/git_transports/cli_push.rs`) to compare.

use std::path::Path;

use gix::ObjectId;

use super::{FetchOptions, GitError};

/// One push of a status commit: make `remote_ref` at `url` point to `new`, but only if it still
/// points to `expected_old` (`None`: only if it does not exist). The objects come from the bare
/// repository at `git_dir`.
pub struct PushRequest<'a> {
    pub git_dir: &'a Path,
    pub url: &'a str,
    pub remote_ref: &'a str,
    pub new: ObjectId,
    pub expected_old: Option<ObjectId>,
    pub opts: &'a FetchOptions,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushResult {
    Pushed,
    UpToDate,
    /// The remote ref is not at `expected_old` any more (or not a fast-forward): fetch, rebase,
    /// retry.
    Stale {
        reason: String,
    },
}

/// How status commits reach the remote.
pub trait StatusPush: Send + Sync {
    fn push(&self, request: &PushRequest<'_>) -> Result<PushResult, GitError>;
}
