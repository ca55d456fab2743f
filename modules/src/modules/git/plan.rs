//! The `git` commands that clone or update a working tree, planned at check time as git.py's
//! `clone`, `fetch` and `switch_version` would run them, so that `apply` runs exactly them.

use std::path::Path;

use super::query::GitTool;
use super::GitSpec;
use crate::resource::{Change, ModuleError};

/// `git -C DEST ARGS...` as a change.
fn in_dest(spec: &GitSpec, dest: &Path, args: &[&str], summary: &str) -> Change {
    let mut argv = vec![
        spec.git.clone(),
        "-C".to_string(),
        dest.display().to_string(),
    ];
    argv.extend(args.iter().map(|a| a.to_string()));
    Change::Exec {
        argv,
        summary: format!("{summary} in {}", dest.display()),
    }
}

/// git.py's `clone`, then `switch_version` on the fresh clone.
pub(crate) fn clone(
    spec: &GitSpec,
    git: &GitTool,
    dest: &Path,
) -> Result<(Vec<Change>, Vec<String>), ModuleError> {
    let mut warnings = Vec::new();
    let version = spec.version.as_str();
    let repo = spec.repo.as_str();
    let is_branch = version != "HEAD" && git.is_remote_branch(None, repo, version)?;
    let is_branch_or_tag =
        is_branch || (version != "HEAD" && git.is_remote_tag(None, repo, version)?);
    let mut argv = vec![
        spec.git.clone(),
        "clone".into(),
        "--origin".into(),
        spec.remote.clone(),
    ];
    let mut branch_given = false;
    if let Some(depth) = spec.depth {
        if version == "HEAD" || spec.refspec.is_some() {
            argv.extend(["--depth".into(), depth.to_string()]);
        } else if is_branch_or_tag {
            argv.extend([
                "--depth".into(),
                depth.to_string(),
                "--branch".into(),
                version.into(),
            ]);
            branch_given = true;
        } else {
            warnings.push(
                "Ignoring depth argument. Shallow clones are only available for HEAD, branches, \
                 tags or in combination with refspec."
                    .to_string(),
            );
        }
    }
    if spec.single_branch {
        argv.push("--single-branch".into());
        if is_branch_or_tag {
            argv.extend(["--branch".into(), version.into()]);
            branch_given = true;
        }
    }
    argv.extend([repo.to_string(), dest.display().to_string()]);
    let mut changes = vec![Change::Exec {
        argv,
        summary: format!("clone {repo} into {}", dest.display()),
    }];
    if let Some(refspec) = &spec.refspec {
        let mut args = vec!["fetch"];
        let depth = spec.depth.map(|d| d.to_string());
        if let Some(d) = &depth {
            args.extend(["--depth", d]);
        }
        args.extend([spec.remote.as_str(), refspec.as_str()]);
        changes.push(in_dest(spec, dest, &args, &format!("fetch {refspec}")));
    }
    // The clone's local branch: the one given with --branch, else the remote's HEAD.
    let default_branch = remote_default_branch(git, repo)?;
    let local = |b: &str| (branch_given && b == version) || default_branch.as_deref() == Some(b);
    if version == "HEAD" {
        let branch = default_branch.clone().unwrap_or_else(|| "None".into());
        changes.extend(switch_to_head(spec, dest, &branch));
    } else if is_branch {
        changes.extend(switch_to_branch(spec, dest, local(version)));
    } else {
        changes.push(checkout(spec, dest, version));
    }
    Ok((changes, warnings))
}

/// What an existing clone's update needs to know, read by the check.
pub(crate) struct UpdateState<'a> {
    pub repo_path: &'a Path,
    pub local_mods: bool,
    pub url_changed: bool,
}

/// git.py's update of an existing clone: `reset --hard` (force), `remote set-url`, `fetch`,
/// then `switch_version`.
pub(crate) fn update(
    spec: &GitSpec,
    git: &GitTool,
    dest: &Path,
    state: &UpdateState,
) -> Result<Vec<Change>, ModuleError> {
    let version = spec.version.as_str();
    let remote = spec.remote.as_str();
    let mut changes = Vec::new();
    if state.local_mods {
        changes.push(in_dest(
            spec,
            dest,
            &["reset", "--hard", "HEAD"],
            "discard local modifications",
        ));
    }
    if state.url_changed {
        changes.push(in_dest(
            spec,
            dest,
            &["remote", "set-url", remote, &spec.repo],
            &format!("set the URL of {remote} to {}", spec.repo),
        ));
    }
    let current_head = git.head_branch(dest, state.repo_path, remote)?;
    let is_branch = version != "HEAD" && git.is_remote_branch(Some(dest), remote, version)?;
    // fetch()
    let mut refspecs: Vec<String> = Vec::new();
    let mut fetch: Vec<String> = vec!["fetch".into()];
    let mut branch_fetched_locally = false;
    if let Some(depth) = spec.depth {
        let current = current_head.clone().unwrap_or_else(|| "None".into());
        if let Some(r) = &spec.refspec {
            refspecs.push(r.clone());
        } else if version == "HEAD" {
            refspecs.push(current);
        } else if git.is_remote_branch(Some(dest), &spec.repo, version)? {
            if current != version {
                refspecs.push(format!("+refs/heads/{version}:refs/heads/{version}"));
                branch_fetched_locally = true;
            }
            refspecs.push(format!(
                "+refs/heads/{version}:refs/remotes/{remote}/{version}"
            ));
        } else if git.is_remote_tag(Some(dest), &spec.repo, version)? {
            refspecs.push(format!("+refs/tags/{version}:refs/tags/{version}"));
        }
        if !refspecs.is_empty() {
            fetch.extend(["--depth".into(), depth.to_string()]);
        }
    }
    if spec.depth.is_none() || refspecs.is_empty() {
        fetch.push("--tags".into());
        if let Some(r) = &spec.refspec {
            refspecs.push(r.clone());
        }
    }
    if spec.force {
        fetch.push("--force".into());
    }
    fetch.push(remote.into());
    fetch.extend(refspecs);
    let fetch_args: Vec<&str> = fetch.iter().map(String::as_str).collect();
    changes.push(in_dest(
        spec,
        dest,
        &fetch_args,
        &format!("fetch from {remote}"),
    ));
    // switch_version()
    if version == "HEAD" {
        let branch = current_head.unwrap_or_else(|| "None".into());
        changes.extend(switch_to_head(spec, dest, &branch));
    } else if is_branch {
        let local = branch_fetched_locally || git.is_local_branch(dest, version)?;
        changes.extend(switch_to_branch(spec, dest, local));
    } else {
        changes.push(checkout(spec, dest, version));
    }
    Ok(changes)
}

fn switch_to_head(spec: &GitSpec, dest: &Path, branch: &str) -> Vec<Change> {
    let tracking = format!("{}/{branch}", spec.remote);
    vec![
        in_dest(
            spec,
            dest,
            &["checkout", "--force", branch],
            &format!("check out {branch}"),
        ),
        in_dest(
            spec,
            dest,
            &["reset", "--hard", &tracking, "--"],
            &format!("reset to {tracking}"),
        ),
    ]
}

/// `switch_version` for a remote branch: `local` says whether a local branch of that name exists
/// by then.
fn switch_to_branch(spec: &GitSpec, dest: &Path, local: bool) -> Vec<Change> {
    let version = spec.version.as_str();
    let tracking = format!("{}/{version}", spec.remote);
    let mut changes = Vec::new();
    let local = if let (Some(depth), false) = (spec.depth, local) {
        // A shallow clone is single-branch: fetch the branch to be able to check it out.
        let depth = format!("--depth={depth}");
        let heads = format!("+refs/heads/{version}:refs/heads/{version}");
        let remotes = format!("+refs/heads/{version}:refs/remotes/{tracking}");
        changes.push(in_dest(
            spec,
            dest,
            &["fetch", &depth, &spec.remote, &heads, &remotes],
            &format!("fetch branch {version}"),
        ));
        true
    } else {
        local
    };
    if local {
        changes.push(in_dest(
            spec,
            dest,
            &["checkout", "--force", version],
            &format!("check out {version}"),
        ));
        changes.push(in_dest(
            spec,
            dest,
            &["reset", "--hard", &tracking],
            &format!("reset to {tracking}"),
        ));
    } else {
        changes.push(in_dest(
            spec,
            dest,
            &["checkout", "--track", "-b", version, &tracking],
            &format!("check out {version} tracking {tracking}"),
        ));
    }
    changes
}

fn checkout(spec: &GitSpec, dest: &Path, version: &str) -> Change {
    in_dest(
        spec,
        dest,
        &["checkout", "--force", version],
        &format!("check out {version}"),
    )
}

/// The branch the remote's HEAD names (`git ls-remote --symref REPO HEAD`), which a clone checks
/// out.
fn remote_default_branch(git: &GitTool, repo: &str) -> Result<Option<String>, ModuleError> {
    let ran = git.git_ok(&["ls-remote", "--symref", repo, "HEAD"], None)?;
    Ok(ran.stdout.lines().find_map(|l| {
        let target = l.strip_prefix("ref: ")?.split('\t').next()?;
        Some(
            target
                .strip_prefix("refs/heads/")
                .unwrap_or(target)
                .to_string(),
        )
    }))
}
