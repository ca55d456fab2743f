//! Reading and writing history in the local repository: commits, the ancestry walk (shallow
//! aware), and the status commit re-created on a moved remote tip.

use std::collections::{HashSet, VecDeque};

use gix::refs::transaction::PreviousValue;
use gix::ObjectId;

use super::error::{repo_err, GitError};

/// "gitops-agent <agent@HOST>", now.
pub(super) fn agent_signature(host: &str) -> gix::actor::Signature {
    gix::actor::Signature {
        name: "gitops-agent".into(),
        email: format!("agent@{host}").into(),
        time: gix::date::Time::now_local_or_utc(),
    }
}

pub(super) fn find_commit(
    repo: &gix::Repository,
    id: ObjectId,
) -> Result<gix::Commit<'_>, GitError> {
    match repo.try_find_object(id) {
        Ok(Some(obj)) => obj
            .try_into_commit()
            .map_err(repo_err(format!("reading commit {id}"))),
        Ok(None) => Err(GitError::MissingCommit { id }),
        Err(e) => Err(repo_err(format!("reading commit {id}"))(e)),
    }
}

pub(super) fn tree_of(repo: &gix::Repository, commit: ObjectId) -> Result<ObjectId, GitError> {
    Ok(find_commit(repo, commit)?
        .tree_id()
        .map_err(repo_err(format!("reading the tree of {commit}")))?
        .detach())
}

/// Re-creates the status commit `local` (its tree and message, a fresh committer time) on top of
/// `onto` and moves `refname` to it. Returns `onto` itself when its tree is already the same.
pub(super) fn rebase_status(
    repo: &gix::Repository,
    refname: &str,
    local: ObjectId,
    onto: ObjectId,
) -> Result<ObjectId, GitError> {
    let commit = find_commit(repo, local)?;
    let ctx = || format!("re-creating status commit {local} on {onto}");
    let tree = commit.tree_id().map_err(repo_err(ctx()))?.detach();
    let new = if tree_of(repo, onto)? == tree {
        onto
    } else {
        let decoded = commit.decode().map_err(repo_err(ctx()))?;
        let message = decoded.message.to_string();
        let committer = decoded.committer().map_err(repo_err(ctx()))?;
        let sig = gix::actor::Signature {
            name: committer.name.into(),
            email: committer.email.into(),
            time: gix::date::Time::now_local_or_utc(),
        };
        let mut t1 = gix::date::parse::TimeBuf::default();
        let mut t2 = gix::date::parse::TimeBuf::default();
        repo.new_commit_as(
            sig.to_ref(&mut t1),
            sig.to_ref(&mut t2),
            message,
            tree,
            [onto],
        )
        .map_err(repo_err(ctx()))?
        .id
    };
    repo.reference(
        refname,
        new,
        PreviousValue::MustExistAndMatch(gix::refs::Target::Object(local)),
        "status rebased onto the remote",
    )
    .map_err(repo_err(ctx()))?;
    Ok(new)
}

pub(super) enum Walk {
    Found,
    NotFound,
    /// The history is cut (shallow boundary or missing parent) before `old` was found.
    Boundary,
}

/// The commits of the `shallow` file: their parents are not in the repository.
fn shallow_commits(repo: &gix::Repository) -> Result<HashSet<ObjectId>, GitError> {
    let path = repo.path().join("shallow");
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(HashSet::new()),
        Err(e) => return Err(repo_err(format!("reading {}", path.display()))(e)),
    };
    Ok(text
        .lines()
        .filter_map(|l| ObjectId::from_hex(l.trim().as_bytes()).ok())
        .collect())
}

/// Breadth-first walk over the parents of `new`, looking for `old`.
pub(super) fn walk_to(
    repo: &gix::Repository,
    old: ObjectId,
    new: ObjectId,
) -> Result<Walk, GitError> {
    let shallow = shallow_commits(repo)?;
    let mut seen = HashSet::new();
    let mut queue = VecDeque::from([new]);
    let mut cut = false;
    while let Some(id) = queue.pop_front() {
        if id == old {
            return Ok(Walk::Found);
        }
        if !seen.insert(id) {
            continue;
        }
        if shallow.contains(&id) {
            cut = true;
            continue;
        }
        let commit = match find_commit(repo, id) {
            Ok(c) => c,
            Err(GitError::MissingCommit { .. }) if id != new => {
                cut = true;
                continue;
            }
            Err(e) => return Err(e),
        };
        queue.extend(commit.parent_ids().map(|p| p.detach()));
    }
    Ok(if cut { Walk::Boundary } else { Walk::NotFound })
}
