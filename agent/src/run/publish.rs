//! Step 5 of a pull-mode converge, the status's part: commit the status document to the status
//! branch and push it (a push that fails waits in the local repository for the next one).

use tracing::{info, warn};

use super::plan::Plan;
use crate::git::{GitRepo, PushOutcome};
use crate::state::{unix_now, State};
use crate::status::{StatusDoc, STATUS_FILE};

/// Commits the status document to the status branch and pushes it. A push that fails is not
/// lost: the commit stays on the local status branch and goes out with the next push.
///
/// A document identical in substance to the last one committed (same result, same tasks; only
/// the time differs) is not committed again until the heartbeat is due.
pub(super) fn publish_status(plan: &Plan, repo: &GitRepo, doc: &StatusDoc, state: &mut State) {
    let Some((_, branch)) = &plan.status else {
        return;
    };
    let digest = doc.digest();
    let now = unix_now();
    let heartbeat_due = state
        .last_status_at
        .is_none_or(|at| now.saturating_sub(at) >= plan.config.status.heartbeat.as_secs());
    let message = doc.commit_message();
    if state.last_status_digest.as_deref() != Some(digest.as_str()) || heartbeat_due {
        let yaml = doc.to_yaml();
        match repo.record_status(
            branch,
            &[(STATUS_FILE, yaml.as_bytes())],
            &message,
            &plan.ids.hostname,
        ) {
            Ok(_) => {
                state.last_status_digest = Some(digest);
                state.last_status_at = Some(now);
            }
            Err(e) => {
                warn!("status commit: {e}");
                return;
            }
        }
    }
    // Also when nothing new was committed: a status commit whose push failed earlier goes now.
    push_pending(plan, repo, Some(&message));
}

/// Pushes the local status branch if it is ahead of the remote. Returns whether it is in sync.
pub fn push_pending(plan: &Plan, repo: &GitRepo, message: Option<&str>) -> bool {
    let Some((url, branch)) = &plan.status else {
        return true;
    };
    match repo.push_status(url, branch, &plan.fetch) {
        Ok(outcome) => {
            match message {
                Some(m) => info!("status: {m} ({outcome})"),
                None if matches!(outcome, PushOutcome::Pushed { .. }) => {
                    info!("status: pushed a pending status ({outcome})")
                }
                None => {}
            }
            true
        }
        Err(e) => {
            warn!("status push to {url} failed, kept for the next run: {e}");
            false
        }
    }
}
