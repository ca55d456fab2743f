//! What the `git` module reads, with the system `git` tool, the way ansible-core's git.py reads
//! it (the same commands, so the same answers): the checked-out commit, local modifications,
//! the remote's URL and the commit a `version` names on the remote (`git ls-remote`).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::process::Ran;
use crate::resource::ModuleError;

/// The `git` program and the environment every run of it gets.
pub(crate) struct GitTool {
    pub program: String,
    /// The task's `environment`, then the C locale (git.py screen-scrapes in the C locale too).
    pub env: Vec<(String, String)>,
}

impl GitTool {
    pub fn new(program: String, task_env: &[(String, String)]) -> GitTool {
        let mut env = task_env.to_vec();
        for k in ["LANG", "LC_ALL", "LC_MESSAGES", "LC_CTYPE", "LANGUAGE"] {
            env.push((k.to_string(), "C".to_string()));
        }
        GitTool { program, env }
    }

    /// Runs `argv` (its first word is the program), in `cwd` if given.
    pub fn run(&self, argv: &[String], cwd: Option<&Path>) -> Result<Ran, ModuleError> {
        let Some((program, args)) = argv.split_first() else {
            return Err(ModuleError::new("empty command"));
        };
        let mut cmd = Command::new(program);
        cmd.args(args).envs(self.env.iter().map(|(k, v)| (k, v)));
        // As Ansible's run_command: a cwd that is not a directory (yet) is ignored.
        if let Some(dir) = cwd.filter(|d| d.is_dir()) {
            cmd.current_dir(dir);
        }
        crate::process::run(&mut cmd)
    }

    /// `git ARGS` in `cwd`, output returned whatever the exit code.
    pub fn git(&self, args: &[&str], cwd: Option<&Path>) -> Result<Ran, ModuleError> {
        let argv: Vec<String> = std::iter::once(self.program.clone())
            .chain(args.iter().map(|a| a.to_string()))
            .collect();
        self.run(&argv, cwd)
    }

    /// `git ARGS` that must succeed (git.py's `check_rc=True`).
    pub fn git_ok(&self, args: &[&str], cwd: Option<&Path>) -> Result<Ran, ModuleError> {
        let ran = self.git(args, cwd)?;
        if ran.ok() {
            Ok(ran)
        } else {
            Err(ModuleError::new(ran.failure()))
        }
    }

    /// git.py's `get_version`: `git rev-parse REF` in `dest`, whatever it prints.
    pub fn rev_parse(&self, dest: &Path, rev: &str) -> Result<String, ModuleError> {
        let ran = self.git(&["rev-parse", rev], Some(dest))?;
        Ok(ran.stdout.trim_end_matches('\n').to_string())
    }

    /// The commit `rev` names in the local repository, if it names one.
    pub fn local_commit(&self, dest: &Path, rev: &str) -> Result<Option<String>, ModuleError> {
        let spec = format!("{rev}^{{commit}}");
        let ran = self.git(&["rev-parse", "--verify", "--quiet", &spec], Some(dest))?;
        Ok(ran.ok().then(|| ran.stdout.trim().to_string()))
    }

    /// git.py's `has_local_mods`: `git status --porcelain` without untracked files.
    pub fn has_local_mods(&self, dest: &Path) -> Result<bool, ModuleError> {
        let ran = self.git(&["status", "--porcelain"], Some(dest))?;
        Ok(ran.stdout.lines().any(|l| !l.starts_with("??")))
    }

    /// git.py's `get_remote_url`: `git ls-remote --get-url REMOTE`, `None` if that fails.
    pub fn remote_url(&self, dest: &Path, remote: &str) -> Result<Option<String>, ModuleError> {
        let ran = self.git(&["ls-remote", "--get-url", remote], Some(dest))?;
        Ok(ran
            .ok()
            .then(|| ran.stdout.trim_end_matches('\n').to_string()))
    }

    /// git.py's `is_remote_branch`: the name appears in `ls-remote REMOTE -h refs/heads/V`.
    pub fn is_remote_branch(
        &self,
        cwd: Option<&Path>,
        remote: &str,
        version: &str,
    ) -> Result<bool, ModuleError> {
        let pattern = format!("refs/heads/{version}");
        let ran = self.git_ok(&["ls-remote", remote, "-h", &pattern], cwd)?;
        Ok(ran.stdout.contains(version))
    }

    /// git.py's `is_remote_tag`: the name appears in `ls-remote REMOTE -t refs/tags/V`.
    pub fn is_remote_tag(
        &self,
        cwd: Option<&Path>,
        remote: &str,
        version: &str,
    ) -> Result<bool, ModuleError> {
        let pattern = format!("refs/tags/{version}");
        let ran = self.git_ok(&["ls-remote", remote, "-t", &pattern], cwd)?;
        Ok(ran.stdout.contains(version))
    }

    /// git.py's `get_branches` then `is_local_branch`.
    pub fn is_local_branch(&self, dest: &Path, branch: &str) -> Result<bool, ModuleError> {
        let branches = self.branches(dest)?;
        let current = format!("* {branch}");
        Ok(branches.iter().any(|b| b == branch || *b == current))
    }

    fn branches(&self, dest: &Path) -> Result<Vec<String>, ModuleError> {
        let ran = self.git(&["branch", "--no-color", "-a"], Some(dest))?;
        if !ran.ok() {
            return Err(ModuleError::new(format!(
                "Could not determine branch data - received {}",
                ran.stdout
            )));
        }
        Ok(ran
            .stdout
            .split('\n')
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect())
    }

    /// git.py's `get_head_branch`: the branch `.git/HEAD` names, or, on a detached HEAD, the
    /// one `refs/remotes/REMOTE/HEAD` names (`None` when that file is missing).
    pub fn head_branch(
        &self,
        dest: &Path,
        repo_path: &Path,
        remote: &str,
    ) -> Result<Option<String>, ModuleError> {
        let detached = self.branches(dest)?.iter().any(|b| {
            b.starts_with("* ")
                && (b.contains("no branch")
                    || b.contains("detached from")
                    || b.contains("detached at"))
        });
        let headfile = if detached {
            repo_path
                .join("refs")
                .join("remotes")
                .join(remote)
                .join("HEAD")
        } else {
            repo_path.join("HEAD")
        };
        head_splitter(&headfile, remote)
    }

    /// git.py's `get_remote_head`: the commit `version` names on `remote` (a commit id is
    /// returned as given: a remote cannot be asked about one). `cloning`: `remote` is the
    /// repository URL itself (no local repository yet).
    pub fn remote_head(&self, q: &RemoteHead) -> Result<String, ModuleError> {
        let cwd = (!q.cloning).then_some(q.dest).flatten();
        let version = q.version;
        let (pattern_args, tag): (Vec<String>, bool) = if version == "HEAD" {
            if q.cloning {
                (vec!["-h".into(), "HEAD".into()], false)
            } else {
                let (Some(dest), Some(repo_path)) = (q.dest, q.repo_path) else {
                    return Err(ModuleError::new("no destination to read the branch from"));
                };
                let branch = self.head_branch(dest, repo_path, q.remote)?;
                let branch = branch.unwrap_or_else(|| "None".to_string());
                (vec!["-h".into(), format!("refs/heads/{branch}")], false)
            }
        } else if self.is_remote_branch(cwd, q.remote, version)? {
            (vec!["-h".into(), format!("refs/heads/{version}")], false)
        } else if self.is_remote_tag(cwd, q.remote, version)? {
            (vec!["-t".into(), format!("refs/tags/{version}*")], true)
        } else {
            return Ok(version.to_string());
        };
        let mut args = vec!["ls-remote", q.remote];
        args.extend(pattern_args.iter().map(String::as_str));
        let ran = self.git_ok(&args, cwd)?;
        if ran.stdout.is_empty() {
            return Err(ModuleError::new(format!(
                "Could not determine remote revision for {version}"
            )));
        }
        let mut line = ran.stdout.as_str();
        if tag {
            // The dereferenced tag (`^{}`) if this is an annotated tag.
            for l in ran.stdout.split('\n') {
                if l.ends_with(&format!("{version}^{{}}")) {
                    line = l;
                    break;
                } else if l.ends_with(version) {
                    line = l;
                }
            }
        }
        Ok(line
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_string())
    }
}

/// The question [`GitTool::remote_head`] answers.
pub(crate) struct RemoteHead<'a> {
    pub version: &'a str,
    /// The remote's name, or the repository URL when cloning.
    pub remote: &'a str,
    pub cloning: bool,
    pub dest: Option<&'a Path>,
    pub repo_path: Option<&'a Path>,
}

/// git.py's `head_splitter`: the branch name in the first line of a HEAD file.
fn head_splitter(headfile: &Path, remote: &str) -> Result<Option<String>, ModuleError> {
    if !headfile.exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(headfile)
        .map_err(|_| ModuleError::new(format!("Unable to read {}", headfile.display())))?;
    let first = text.split_inclusive('\n').next().unwrap_or_default();
    if first.is_empty() {
        return Ok(None);
    }
    let raw = first.replacen(&format!("refs/remotes/{remote}"), "", 1);
    let newref = raw.split(' ').next_back().unwrap_or_default();
    let last = newref.splitn(3, '/').last().unwrap_or_default();
    Ok(Some(last.trim_end_matches('\n').to_string()))
}

/// git.py's `get_repo_path`: `DEST/.git` (or `DEST` for a bare repository), following a `.git`
/// file's `gitdir:` line.
pub(crate) fn repo_path(dest: &Path, bare: bool) -> Result<PathBuf, String> {
    let path = if bare {
        dest.to_path_buf()
    } else {
        dest.join(".git")
    };
    if !path.is_file() {
        return Ok(path);
    }
    let data = std::fs::read_to_string(&path).map_err(|e| e.to_string())?;
    let data = data.trim_end();
    let Some((prefix, gitdir)) = data.split_once("gitdir: ") else {
        return Err("not enough values to unpack (expected 2, got 1)".into());
    };
    if !prefix.is_empty() {
        return Err(".git file has invalid git dir reference format".into());
    }
    let resolved = if Path::new(gitdir).is_absolute() {
        PathBuf::from(gitdir)
    } else {
        dest.join(gitdir)
    };
    if !resolved.is_dir() {
        return Err(format!("{} is not a directory", resolved.display()));
    }
    Ok(resolved)
}

/// git.py's `unfrackgitpath`, for comparing remote URLs that are paths: `~` and `$VAR` expanded,
/// then the real, normalised path.
pub(crate) fn unfrack(path: &str) -> PathBuf {
    let expanded = match path.strip_prefix('~') {
        Some(rest) if rest.is_empty() || rest.starts_with('/') => {
            std::env::var("HOME").unwrap_or_default() + rest
        }
        _ => path.to_string(),
    };
    let p = Path::new(&expanded);
    let abs = if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir().unwrap_or_default().join(p)
    };
    std::fs::canonicalize(&abs).unwrap_or_else(|_| normalize(&abs))
}

fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_splitter_reads_branch_names_as_git_py() {
        let dir = tempfile::tempdir().unwrap();
        let head = dir.path().join("HEAD");
        std::fs::write(&head, "ref: refs/heads/feature/x\n").unwrap();
        assert_eq!(
            head_splitter(&head, "origin").unwrap().as_deref(),
            Some("feature/x")
        );
        std::fs::write(&head, "ref: refs/remotes/origin/main\n").unwrap();
        assert_eq!(
            head_splitter(&head, "origin").unwrap().as_deref(),
            Some("main")
        );
        assert_eq!(
            head_splitter(&dir.path().join("no"), "origin").unwrap(),
            None
        );
    }

    #[test]
    fn repo_path_follows_a_gitdir_file() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real.git");
        std::fs::create_dir(&real).unwrap();
        let wt = dir.path().join("wt");
        std::fs::create_dir(&wt).unwrap();
        assert_eq!(repo_path(&wt, false).unwrap(), wt.join(".git"));
        std::fs::write(wt.join(".git"), "gitdir: ../real.git\n").unwrap();
        assert_eq!(repo_path(&wt, false).unwrap(), wt.join("../real.git"));
        std::fs::write(wt.join(".git"), "junk gitdir: x\n").unwrap();
        assert!(repo_path(&wt, false).is_err());
    }
}
