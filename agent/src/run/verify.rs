//! Step 2 of a pull-mode converge, Verify: the commit is signed by an allowed key and, unless
//! rollbacks are allowed, descends from the last applied commit.

use std::str::FromStr;

use super::plan::Plan;
use crate::git::{GitError, GitRepo, ObjectId};
use crate::trust::{verify, SignedCommit, TrustError, TrustPolicy, Verdict};

/// Why a commit is refused (nothing of it is applied); the message goes into the status.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error("signing keys: {0}")]
    Keys(#[source] TrustError),
    #[error(transparent)]
    Signature(#[from] TrustError),
    /// The commit's signature could not be read.
    #[error(transparent)]
    Git(#[from] GitError),
    #[error(
        "does not descend from the last applied commit {} (a force-push back?); \
         use --allow-rollback or `allow_rollback: true` to apply it",
        &last[..7.min(last.len())]
    )]
    Rollback { last: String },
    #[error("ancestry: {0}")]
    Ancestry(#[source] GitError),
    /// The state names a last applied commit that is no object id.
    #[error("ancestry: {0}")]
    BadLastApplied(#[source] <ObjectId as FromStr>::Err),
}

/// Checks the signature of `tip` against the signing policy.
pub(super) fn signature(plan: &Plan, repo: &GitRepo, tip: ObjectId) -> Result<Verdict, Refusal> {
    let policy = TrustPolicy::load(
        plan.config.signing.allowed_signers.as_deref(),
        &plan.config.signing.openpgp_keys,
        plan.config.signing.require,
    )
    .map_err(Refusal::Keys)?;
    let (sig, time) = repo.commit_signature(tip)?;
    let (signature, payload) = match &sig {
        Some((s, p)) => (Some(s.as_slice()), p.as_slice()),
        None => (None, &[][..]),
    };
    Ok(verify(
        &policy,
        &SignedCommit {
            signature,
            payload,
            commit_time: time,
        },
    )?)
}

/// Checks that `tip` descends from `last` (the last applied commit): no silent rollback.
pub(super) fn ancestry(
    plan: &Plan,
    repo: &GitRepo,
    tip: ObjectId,
    last: &str,
) -> Result<(), Refusal> {
    let old = last.parse::<ObjectId>().map_err(Refusal::BadLastApplied)?;
    let descends = repo
        .is_ancestor(&plan.url, &plan.branch, old, tip, &plan.fetch)
        .map_err(Refusal::Ancestry)?;
    if descends {
        Ok(())
    } else {
        Err(Refusal::Rollback {
            last: last.to_string(),
        })
    }
}
