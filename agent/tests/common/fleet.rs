//! The pull-mode tests' fleet: a repository `fleet.git` served over one transport, a work clone
//! to commit into it, the agent's state dir and scratch root; signing keys; and [`matrix!`],
//! one `#[test]` per scenario and transport. Shared by `pull.rs`, `pull_trust.rs` and
//! `pull_https.rs` (each includes it with `#[path]`, as `daemon.rs` does its harness).

#![allow(dead_code, unused_macros)]

use std::path::{Path, PathBuf};
use std::process::Output;

use crate::common::{agent, git, git_cmd, hostname, stdout, Remote, SshKeys, Transport};

/// One test per scenario and transport: `scenario::file`, `scenario::http`, `scenario::ssh`.
macro_rules! matrix {
    ($($scenario:ident),* $(,)?) => {
        $(
            mod $scenario {
                #[test]
                fn file() {
                    super::$scenario(super::Transport::File)
                }
                #[test]
                fn http() {
                    super::$scenario(super::Transport::Http)
                }
                #[test]
                fn ssh() {
                    super::$scenario(super::Transport::Ssh)
                }
            }
        )*
    };
}

/// A fleet repository `fleet.git` served over one transport, a work clone to commit into it,
/// and the agent's state dir and scratch root.
pub struct Fleet {
    pub tmp: tempfile::TempDir,
    pub transport: Transport,
    pub work: PathBuf,
    pub remote: Remote,
    pub keys: Option<SshKeys>,
    pub state: PathBuf,
    pub root: PathBuf,
    pub host: String,
}

impl Fleet {
    pub fn new(transport: Transport) -> Fleet {
        Fleet::with_bare(transport, |bare| {
            git(
                bare.parent().unwrap(),
                &["init", "-q", "--bare", bare.to_str().unwrap()],
            );
        })
    }

    /// `make_bare` creates `fleet.git` at the path it is given.
    pub fn with_bare(transport: Transport, make_bare: impl FnOnce(&Path)) -> Fleet {
        let tmp = tempfile::tempdir().unwrap();
        let host = hostname();
        let work = tmp.path().join("work");
        std::fs::create_dir_all(&work).unwrap();
        git(&work, &["init", "-q", "-b", &format!("hosts/{host}")]);
        let srv = tmp.path().join("srv");
        std::fs::create_dir_all(&srv).unwrap();
        make_bare(&srv.join("fleet.git"));
        let keys = (transport == Transport::Ssh).then(|| SshKeys::new(&tmp.path().join("ssh")));
        let remote = Remote::start(transport, &srv, keys.as_ref(), None);
        let root = tmp.path().join("root");
        std::fs::create_dir_all(&root).unwrap();
        Fleet {
            state: tmp.path().join("state"),
            root,
            transport,
            work,
            remote,
            keys,
            host,
            tmp,
        }
    }

    pub fn bare(&self) -> PathBuf {
        self.remote.base.join("fleet.git")
    }

    pub fn url(&self) -> String {
        self.remote.url("fleet.git")
    }

    /// Another server of the same transport (e.g. for the status), with its own directory.
    pub fn second_remote(&self, name: &str) -> Remote {
        Remote::start(
            self.transport,
            &self.tmp.path().join(name),
            self.keys.as_ref(),
            None,
        )
    }

    /// Commits `local.yml` (plus `extra` arguments to `git commit`) and force-pushes the host
    /// branch to the bare repository. Returns the commit id.
    pub fn commit(&self, playbook: &str, extra: &[&str]) -> String {
        std::fs::write(self.work.join("local.yml"), playbook).unwrap();
        git(&self.work, &["add", "-A"]);
        let mut args = extra.to_vec();
        args.extend_from_slice(&["commit", "-q", "-m", "change"]);
        git(&self.work, &args);
        let id = git(&self.work, &["rev-parse", "HEAD"]);
        self.push(&id);
        id
    }

    /// A commit signed (SSH signature, `gpg.format=ssh`) with the private key `key`.
    pub fn commit_signed(&self, playbook: &str, key: &Path) -> String {
        let signing_key = format!("user.signingkey={}", key.display());
        self.commit(
            playbook,
            &[
                "-c",
                "gpg.format=ssh",
                "-c",
                &signing_key,
                "-c",
                "commit.gpgsign=true",
            ],
        )
    }

    /// Force-pushes `rev` as the host branch (the admin's side, straight into the bare repo).
    pub fn push(&self, rev: &str) {
        git(
            &self.work,
            &[
                "push",
                "-q",
                "-f",
                self.bare().to_str().unwrap(),
                &format!("{rev}:refs/heads/hosts/{}", self.host),
            ],
        );
    }

    /// The arguments that reach the servers of this transport (key and known_hosts for SSH).
    pub fn transport_args(&self) -> Vec<String> {
        match &self.keys {
            Some(k) => vec![
                "--ssh-key".into(),
                k.client_key.display().to_string(),
                "--known-hosts".into(),
                k.known_hosts.display().to_string(),
            ],
            None => vec![],
        }
    }

    /// `gitops-agent converge` in pull mode against this fleet.
    pub fn converge(&self, extra: &[&str]) -> Output {
        let url = self.url();
        let state = self.state.display().to_string();
        let root = format!("root={}", self.root.display());
        let mut args = vec![
            "converge",
            "--repo",
            &url,
            "--state-dir",
            &state,
            "-e",
            &root,
        ];
        let transport = self.transport_args();
        args.extend(transport.iter().map(String::as_str));
        args.extend_from_slice(extra);
        agent(&args)
    }

    /// `gitops-agent status` for this state dir.
    pub fn agent_status(&self) -> String {
        let out = agent(&["status", "--state-dir", self.state.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        stdout(&out)
    }

    /// `status.yml` of the status branch in `bare`, if the branch exists there.
    pub fn status_in(&self, bare: &Path) -> Option<String> {
        let out = git_cmd(bare)
            .args(["show", &format!("status/{}:status.yml", self.host)])
            .output()
            .unwrap();
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    pub fn status(&self) -> String {
        self.status_in(&self.bare())
            .expect("a status commit on the server")
    }

    /// The subjects of the status branch in `bare`, newest first (empty when absent).
    pub fn status_log_in(&self, bare: &Path) -> Vec<String> {
        let out = git_cmd(bare)
            .args(["log", "--format=%s", &format!("status/{}", self.host)])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect()
    }

    pub fn status_log(&self) -> Vec<String> {
        self.status_log_in(&self.bare())
    }

    pub fn app_conf(&self) -> Option<String> {
        std::fs::read_to_string(self.root.join("app.conf")).ok()
    }
}

pub fn play(content: &str) -> String {
    format!(
        "- hosts: all\n  gather_facts: false\n  tasks:\n    - name: app config\n      copy:\n        dest: \"{{{{ root }}}}/app.conf\"\n        content: \"{content}\\n\"\n"
    )
}

pub fn code(out: &Output) -> Option<i32> {
    out.status.code()
}

/// Keys for commit signatures: `admin` is trusted (in allowed_signers), `intruder` is not.
pub struct Signers {
    pub admin: PathBuf,
    pub intruder: PathBuf,
    pub allowed_signers: PathBuf,
}

impl Signers {
    pub fn new(dir: &Path) -> Signers {
        let dir = dir.join("signers");
        std::fs::create_dir_all(&dir).unwrap();
        let admin = dir.join("admin");
        let intruder = dir.join("intruder");
        crate::common::ssh_keygen(&admin, "admin");
        crate::common::ssh_keygen(&intruder, "intruder");
        let public = std::fs::read_to_string(dir.join("admin.pub")).unwrap();
        let allowed_signers = dir.join("allowed_signers");
        std::fs::write(
            &allowed_signers,
            format!("ops@example.org namespaces=\"git\" {public}"),
        )
        .unwrap();
        Signers {
            admin,
            intruder,
            allowed_signers,
        }
    }

    /// `--require-signatures --allowed-signers FILE`.
    pub fn args(&self) -> [&str; 3] {
        [
            "--require-signatures",
            "--allowed-signers",
            self.allowed_signers.to_str().unwrap(),
        ]
    }
}

pub fn with(base: &[&str], extra: &[&str]) -> Vec<String> {
    base.iter().chain(extra).map(|s| s.to_string()).collect()
}

pub fn converge_signed(f: &Fleet, s: &Signers, extra: &[&str]) -> Output {
    let args = with(&s.args(), extra);
    f.converge(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

pub fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}
