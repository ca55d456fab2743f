//! Keys, signatures and signed commits made by the real tools, for the trust tests and the
//! verification benchmark: `ssh-keygen` (apt: openssh-client), `gpg` and `gpgconf` (apt: gnupg),
//! `git`. A missing tool fails with the package to install; nothing is skipped.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use gitops_agent::trust::{SignedCommit, TrustPolicy};

pub fn run(cmd: &mut Command, apt_package: &str) -> std::process::Output {
    let program = cmd.get_program().to_string_lossy().into_owned();
    let out = cmd.stdin(Stdio::null()).output().unwrap_or_else(|e| {
        panic!("cannot run `{program}` ({e}): install the apt package {apt_package}")
    });
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

// ---------------------------------------------------------------- SSH

pub struct SshKey {
    pub private: PathBuf,
    pub public_line: String,
}

pub fn ssh_key(dir: &Path, name: &str, args: &[&str]) -> SshKey {
    let private = dir.join(name);
    run(
        Command::new("ssh-keygen")
            .args(["-q", "-N", "", "-C", name, "-f"])
            .arg(&private)
            .args(args),
        "openssh-client",
    );
    let public_line = std::fs::read_to_string(private.with_extension("pub"))
        .or_else(|_| std::fs::read_to_string(format!("{}.pub", private.display())))
        .unwrap();
    SshKey {
        private,
        public_line: public_line.trim().to_string(),
    }
}

pub fn ed25519(dir: &Path, name: &str) -> SshKey {
    ssh_key(dir, name, &["-t", "ed25519"])
}

/// `ssh-keygen -Y sign -n NAMESPACE -f KEY FILE`, returns the armored signature.
pub fn ssh_sign(dir: &Path, key: &SshKey, namespace: &str, payload: &[u8]) -> Vec<u8> {
    let file = tempfile::NamedTempFile::new_in(dir).unwrap();
    std::fs::write(file.path(), payload).unwrap();
    run(
        Command::new("ssh-keygen")
            .args(["-q", "-Y", "sign", "-n", namespace, "-f"])
            .arg(&key.private)
            .arg(file.path()),
        "openssh-client",
    );
    let sig = PathBuf::from(format!("{}.sig", file.path().display()));
    let bytes = std::fs::read(&sig).unwrap();
    std::fs::remove_file(sig).unwrap();
    bytes
}

pub fn signers_policy(dir: &Path, allowed_signers: &str, require: bool) -> TrustPolicy {
    let path = dir.join("allowed_signers");
    std::fs::write(&path, allowed_signers).unwrap();
    TrustPolicy::load(Some(&path), &[], require).unwrap()
}

pub const PAYLOAD: &[u8] = b"tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904\n\
author A <a@example.org> 1700000000 +0000\n\
committer A <a@example.org> 1700000000 +0000\n\nmessage\n";
pub const COMMIT_TIME: i64 = 1_700_000_000; // 2023-11-14T22:13:20Z

pub fn commit<'a>(sig: &'a [u8], payload: &'a [u8]) -> SignedCommit<'a> {
    SignedCommit {
        signature: Some(sig),
        payload,
        commit_time: COMMIT_TIME,
    }
}

pub fn fingerprint(key: &SshKey) -> String {
    ssh_key::PublicKey::from_openssh(&key.public_line)
        .unwrap()
        .fingerprint(ssh_key::HashAlg::Sha256)
        .to_string()
}

// ---------------------------------------------------------------- real git commits

/// The signature and payload of HEAD, split the way gix's `Commit::signature()` does.
pub struct GitCommit {
    pub signature: Vec<u8>,
    pub payload: Vec<u8>,
    pub commit_time: i64,
}

pub fn git(repo: &Path) -> Command {
    let mut cmd = Command::new("git");
    cmd.current_dir(repo)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", repo)
        .env_remove("GIT_DIR")
        .args(["-c", "user.name=Test", "-c", "user.email=t@example.org"]);
    cmd
}

pub fn head_commit(repo: &Path) -> GitCommit {
    let out = run(git(repo).args(["cat-file", "commit", "HEAD"]), "git");
    split_gpgsig(&out.stdout)
}

/// Split `git cat-file commit` output: the `gpgsig` header (with its continuation lines) goes
/// out of the payload; its value, continuation-line spaces removed, is the signature.
pub fn split_gpgsig(raw: &[u8]) -> GitCommit {
    let text = std::str::from_utf8(raw).unwrap();
    let (headers, message) = text.split_once("\n\n").unwrap();
    let mut payload = String::new();
    let mut sig_lines: Vec<&str> = Vec::new();
    let mut in_sig = false;
    let mut commit_time = None;
    for line in headers.split('\n') {
        if let Some(v) = line.strip_prefix("gpgsig ") {
            in_sig = true;
            sig_lines.push(v);
            continue;
        }
        if in_sig {
            if let Some(cont) = line.strip_prefix(' ') {
                sig_lines.push(cont);
                continue;
            }
            in_sig = false;
        }
        if let Some(c) = line.strip_prefix("committer ") {
            let mut parts = c.rsplitn(3, ' ');
            parts.next();
            commit_time = Some(parts.next().unwrap().parse().unwrap());
        }
        payload.push_str(line);
        payload.push('\n');
    }
    payload.push('\n');
    payload.push_str(message);
    assert!(!sig_lines.is_empty(), "HEAD is not signed:\n{text}");
    GitCommit {
        signature: sig_lines.join("\n").into_bytes(),
        payload: payload.into_bytes(),
        commit_time: commit_time.unwrap(),
    }
}

pub fn init_repo(dir: &Path) -> PathBuf {
    let repo = dir.join("repo");
    std::fs::create_dir(&repo).unwrap();
    run(git(&repo).args(["init", "-q"]), "git");
    std::fs::write(repo.join("site.yml"), "- hosts: all\n").unwrap();
    run(git(&repo).args(["add", "site.yml"]), "git");
    repo
}
// ---------------------------------------------------------------- OpenPGP

/// A throw-away GNUPGHOME; its gpg-agent is stopped on drop.
pub struct GnuPg {
    pub home: tempfile::TempDir,
}

impl GnuPg {
    pub fn new() -> GnuPg {
        // Short path: gpg-agent's socket path must fit in sun_path.
        let home = tempfile::Builder::new()
            .prefix("gpg")
            .tempdir_in("/tmp")
            .unwrap();
        let mut perms = std::fs::metadata(home.path()).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o700);
        std::fs::set_permissions(home.path(), perms).unwrap();
        GnuPg { home }
    }

    pub fn cmd(&self) -> Command {
        let mut cmd = Command::new("gpg");
        cmd.env("GNUPGHOME", self.home.path()).args([
            "--batch",
            "--quiet",
            "--no-tty",
            "--pinentry-mode",
            "loopback",
            "--passphrase",
            "",
        ]);
        cmd
    }

    pub fn gpg(&self, args: &[&str]) -> Vec<u8> {
        run(self.cmd().args(args), "gnupg").stdout
    }

    /// A new ed25519 signing key; returns its fingerprint.
    pub fn gen_key(&self, uid: &str, extra: &[&str]) -> String {
        let mut args = extra.to_vec();
        args.extend(["--quick-gen-key", uid, "ed25519", "sign", "never"]);
        self.gpg(&args);
        self.fingerprint(uid)
    }

    pub fn fingerprint(&self, uid: &str) -> String {
        let out = String::from_utf8(self.gpg(&["--with-colons", "--list-keys", uid])).unwrap();
        out.lines()
            .find_map(|l| l.strip_prefix("fpr:"))
            .map(|l| l.trim_matches(':').to_string())
            .unwrap()
    }

    /// Fingerprints of all keys (primary first, then subkeys).
    pub fn all_fingerprints(&self, uid: &str) -> Vec<String> {
        let out = String::from_utf8(self.gpg(&["--with-colons", "--list-keys", uid])).unwrap();
        out.lines()
            .filter_map(|l| l.strip_prefix("fpr:"))
            .map(|l| l.trim_matches(':').to_string())
            .collect()
    }

    pub fn export(&self, uid: &str, path: &Path) {
        std::fs::write(path, self.gpg(&["--export", "--armor", uid])).unwrap();
    }

    pub fn sign(&self, uid: &str, payload: &[u8], extra: &[&str]) -> Vec<u8> {
        let file = self.home.path().join("payload");
        std::fs::write(&file, payload).unwrap();
        let mut args = extra.to_vec();
        args.extend(["--detach-sign", "--armor", "-u", uid, "-o", "-"]);
        let mut cmd = self.cmd();
        cmd.args(&args).arg(&file);
        run(&mut cmd, "gnupg").stdout
    }
}

impl Drop for GnuPg {
    fn drop(&mut self) {
        let _ = Command::new("gpgconf")
            .env("GNUPGHOME", self.home.path())
            .args(["--kill", "gpg-agent"])
            .status();
    }
}

pub fn pgp_policy(keys: &[PathBuf], require: bool) -> TrustPolicy {
    TrustPolicy::load(None, keys, require).unwrap()
}
