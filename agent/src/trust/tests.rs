//! End-to-end tests with keys and signatures made at test time by the real tools.
//!
//! They need `ssh-keygen` (apt: openssh-client), `gpg` and `gpgconf` (apt: gnupg) and `git`.
//! A missing tool fails the test with the package to install; nothing is skipped.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use super::*;

fn run(cmd: &mut Command, apt_package: &str) -> std::process::Output {
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

struct SshKey {
    private: PathBuf,
    public_line: String,
}

fn ssh_key(dir: &Path, name: &str, args: &[&str]) -> SshKey {
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

fn ed25519(dir: &Path, name: &str) -> SshKey {
    ssh_key(dir, name, &["-t", "ed25519"])
}

/// `ssh-keygen -Y sign -n NAMESPACE -f KEY FILE`, returns the armored signature.
fn ssh_sign(dir: &Path, key: &SshKey, namespace: &str, payload: &[u8]) -> Vec<u8> {
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

fn signers_policy(dir: &Path, allowed_signers: &str, require: bool) -> TrustPolicy {
    let path = dir.join("allowed_signers");
    std::fs::write(&path, allowed_signers).unwrap();
    TrustPolicy::load(Some(&path), &[], require).unwrap()
}

const PAYLOAD: &[u8] = b"tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904\n\
author A <a@example.org> 1700000000 +0000\n\
committer A <a@example.org> 1700000000 +0000\n\nmessage\n";
const COMMIT_TIME: i64 = 1_700_000_000; // 2023-11-14T22:13:20Z

fn commit<'a>(sig: &'a [u8], payload: &'a [u8]) -> SignedCommit<'a> {
    SignedCommit {
        signature: Some(sig),
        payload,
        commit_time: COMMIT_TIME,
    }
}

#[test]
fn trust_ssh_allowed_key_is_trusted_with_its_principal() {
    let dir = tempfile::tempdir().unwrap();
    let key = ed25519(dir.path(), "admin");
    let other = ed25519(dir.path(), "other");
    let policy = signers_policy(
        dir.path(),
        &format!(
            "# ops\nother@example.org {}\nadmin@example.org,root@example.org namespaces=\"git\" {}\n",
            other.public_line, key.public_line
        ),
        true,
    );
    let sig = ssh_sign(dir.path(), &key, "git", PAYLOAD);
    let v = verify(&policy, &commit(&sig, PAYLOAD)).unwrap();
    let Verdict::Trusted {
        signer,
        key: fp,
        format,
    } = &v
    else {
        panic!("{v:?}")
    };
    assert_eq!(signer, "admin@example.org,root@example.org");
    assert_eq!(*format, SigFormat::Ssh);
    // Same fingerprint as `ssh-keygen -l`.
    let out = run(
        Command::new("ssh-keygen")
            .arg("-lf")
            .arg(format!("{}.pub", key.private.display())),
        "openssh-client",
    );
    let listed = String::from_utf8(out.stdout).unwrap();
    assert_eq!(listed.split_whitespace().nth(1), Some(fp.as_str()));
    assert!(v
        .to_string()
        .contains("good ssh signature by admin@example.org"));
}

#[test]
fn trust_ssh_key_types_ecdsa_and_rsa() {
    let dir = tempfile::tempdir().unwrap();
    for (name, args) in [
        ("p256", &["-t", "ecdsa", "-b", "256"][..]),
        ("p384", &["-t", "ecdsa", "-b", "384"]),
        ("p521", &["-t", "ecdsa", "-b", "521"]),
        ("rsa", &["-t", "rsa", "-b", "2048"]),
    ] {
        let key = ssh_key(dir.path(), name, args);
        let policy = signers_policy(dir.path(), &format!("{name}@x {}\n", key.public_line), true);
        let sig = ssh_sign(dir.path(), &key, "git", PAYLOAD);
        match verify(&policy, &commit(&sig, PAYLOAD)) {
            Ok(Verdict::Trusted { signer, .. }) => assert_eq!(signer, format!("{name}@x")),
            other => panic!("{name}: {other:?}"),
        }
        let mut tampered = PAYLOAD.to_vec();
        tampered[0] ^= 1;
        assert!(
            matches!(
                verify(&policy, &commit(&sig, &tampered)),
                Err(TrustError::BadSignature(_))
            ),
            "{name}"
        );
    }
}

#[test]
fn trust_ssh_unknown_key_is_refused_even_when_not_required() {
    let dir = tempfile::tempdir().unwrap();
    let key = ed25519(dir.path(), "admin");
    let stranger = ed25519(dir.path(), "stranger");
    let sig = ssh_sign(dir.path(), &stranger, "git", PAYLOAD);
    for require in [true, false] {
        let policy = signers_policy(
            dir.path(),
            &format!("admin@x {}\n", key.public_line),
            require,
        );
        let err = verify(&policy, &commit(&sig, PAYLOAD)).unwrap_err();
        let TrustError::UnknownKey { fingerprint, .. } = &err else {
            panic!("{err:?}")
        };
        assert!(fingerprint.starts_with("SHA256:"), "{fingerprint}");
        let msg = err.to_string();
        assert!(
            msg.starts_with(&format!("key {fingerprint} is not in allowed_signers (")),
            "{msg}"
        );
    }
}

#[test]
fn trust_ssh_tampered_payload_is_a_bad_signature() {
    let dir = tempfile::tempdir().unwrap();
    let key = ed25519(dir.path(), "admin");
    let policy = signers_policy(dir.path(), &format!("admin@x {}\n", key.public_line), false);
    let sig = ssh_sign(dir.path(), &key, "git", PAYLOAD);
    let mut longer = PAYLOAD.to_vec();
    longer.push(b'\n');
    let err = verify(&policy, &commit(&sig, &longer)).unwrap_err();
    assert!(matches!(err, TrustError::BadSignature(_)), "{err:?}");
    assert!(err.to_string().starts_with("bad signature: "), "{err}");
    // A changed signature byte (the last base64 line holds the signature's end) is a bad
    // signature too, not a panic.
    let mut mangled = sig.clone();
    let end = sig.windows(9).position(|w| w == b"\n-----END").unwrap();
    let mid = end - 10;
    mangled[mid] = if mangled[mid] == b'A' { b'B' } else { b'A' };
    let r = verify(&policy, &commit(&mangled, PAYLOAD));
    assert!(matches!(r, Err(TrustError::BadSignature(_))), "{r:?}");
}

#[test]
fn trust_ssh_namespaces() {
    let dir = tempfile::tempdir().unwrap();
    let key = ed25519(dir.path(), "admin");
    // Signed for another purpose: `-n file`.
    let policy = signers_policy(dir.path(), &format!("admin@x {}\n", key.public_line), true);
    let file_sig = ssh_sign(dir.path(), &key, "file", PAYLOAD);
    let err = verify(&policy, &commit(&file_sig, PAYLOAD)).unwrap_err();
    assert!(
        matches!(&err, TrustError::WrongNamespace { found, .. } if found == "file"),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "signature namespace is \"file\", not \"git\""
    );

    // Signed for git, but the key may only sign files.
    let git_sig = ssh_sign(dir.path(), &key, "git", PAYLOAD);
    let policy = signers_policy(
        dir.path(),
        &format!("admin@x namespaces=\"file\" {}\n", key.public_line),
        true,
    );
    let err = verify(&policy, &commit(&git_sig, PAYLOAD)).unwrap_err();
    assert!(
        matches!(err, TrustError::NamespaceNotAllowed { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("allowed_signers:1)"), "{err}");
    // Patterns and negation, as in OpenSSH.
    let policy = signers_policy(
        dir.path(),
        &format!("admin@x namespaces=\"*,!git\" {}\n", key.public_line),
        true,
    );
    assert!(verify(&policy, &commit(&git_sig, PAYLOAD)).is_err());
    let policy = signers_policy(
        dir.path(),
        &format!("admin@x namespaces=\"file,g?t\" {}\n", key.public_line),
        true,
    );
    assert!(matches!(
        verify(&policy, &commit(&git_sig, PAYLOAD)),
        Ok(Verdict::Trusted { .. })
    ));
}

#[test]
fn trust_ssh_validity_window_uses_the_commit_time() {
    let dir = tempfile::tempdir().unwrap();
    let key = ed25519(dir.path(), "admin");
    let sig = ssh_sign(dir.path(), &key, "git", PAYLOAD);
    let k = &key.public_line;
    let check = |opts: &str| {
        let policy = signers_policy(dir.path(), &format!("admin@x {opts} {k}\n"), true);
        verify(&policy, &commit(&sig, PAYLOAD))
    };
    // The commit time is 2023-11-14T22:13:20Z.
    let err = check("valid-before=\"20231114Z\"").unwrap_err();
    assert!(matches!(err, TrustError::Expired { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "key {} of admin@x expired at 2023-11-14T00:00:00Z, before the commit time 2023-11-14T22:13:20Z ({}:1)",
            fingerprint(&key),
            dir.path().join("allowed_signers").display()
        )
    );
    let err = check("valid-after=\"202311142214Z\"").unwrap_err();
    assert!(matches!(err, TrustError::NotYetValid { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("is valid only from 2023-11-14T22:14:00Z"),
        "{err}"
    );
    // Bounds are inclusive, as in OpenSSH.
    assert!(check("valid-after=\"20231114221320Z\",valid-before=\"20231114221321Z\"").is_ok());
    assert!(check("valid-after=\"20231114221319Z\",valid-before=\"20231114221320Z\"").is_ok());
    assert!(check("valid-after=\"20230101Z\",valid-before=\"20240101Z\"").is_ok());
    // The commit time, not the current time: this key expired long ago.
    assert!(check("valid-before=\"20231115\"").is_ok());

    // The same key listed twice: an old line that expired and a current one.
    let policy = signers_policy(
        dir.path(),
        &format!("old@x valid-before=\"20200101Z\" {k}\nnew@x valid-after=\"20230101Z\" {k}\n"),
        true,
    );
    match verify(&policy, &commit(&sig, PAYLOAD)) {
        Ok(Verdict::Trusted { signer, .. }) => assert_eq!(signer, "new@x"),
        other => panic!("{other:?}"),
    }
}

fn fingerprint(key: &SshKey) -> String {
    ssh_key::PublicKey::from_openssh(&key.public_line)
        .unwrap()
        .fingerprint(ssh_key::HashAlg::Sha256)
        .to_string()
}

#[test]
fn trust_unsigned_commits() {
    let dir = tempfile::tempdir().unwrap();
    let key = ed25519(dir.path(), "admin");
    let unsigned = SignedCommit {
        signature: None,
        payload: PAYLOAD,
        commit_time: COMMIT_TIME,
    };
    let required = signers_policy(dir.path(), &format!("admin@x {}\n", key.public_line), true);
    let err = verify(&required, &unsigned).unwrap_err();
    assert!(matches!(err, TrustError::Unsigned));
    assert_eq!(err.to_string(), "commit is not signed");

    let optional = signers_policy(dir.path(), &format!("admin@x {}\n", key.public_line), false);
    assert_eq!(
        verify(&optional, &unsigned).unwrap(),
        Verdict::UnsignedAccepted
    );
    assert_eq!(
        verify(&TrustPolicy::permissive(), &unsigned).unwrap(),
        Verdict::UnsignedAccepted
    );
}

#[test]
fn trust_policy_without_keys() {
    let dir = tempfile::tempdir().unwrap();
    // Requiring signatures with nothing to trust is a configuration error.
    let err = TrustPolicy::load(None, &[], true).unwrap_err();
    assert!(matches!(err, TrustError::NoTrustedKeys), "{err:?}");
    // Not required, nothing trusted: signatures are not checked at all.
    let key = ed25519(dir.path(), "someone");
    let sig = ssh_sign(dir.path(), &key, "git", PAYLOAD);
    let policy = TrustPolicy::load(None, &[], false).unwrap();
    assert_eq!(
        verify(&policy, &commit(&sig, PAYLOAD)).unwrap(),
        Verdict::NotChecked {
            format: SigFormat::Ssh
        }
    );
    // An empty allowed_signers file counts as configured: the key is then unknown.
    let policy = signers_policy(dir.path(), "# nobody yet\n", false);
    assert!(matches!(
        verify(&policy, &commit(&sig, PAYLOAD)),
        Err(TrustError::UnknownKey { .. })
    ));
    // Missing files are reported with their path.
    let missing = dir.path().join("nope");
    let err = TrustPolicy::load(Some(&missing), &[], true).unwrap_err();
    assert!(
        err.to_string()
            .starts_with(&format!("cannot read {}: ", missing.display())),
        "{err}"
    );
    // Parse errors name the file and line.
    let path = dir.path().join("bad_signers");
    std::fs::write(
        &path,
        format!(
            "a@x {}\n\nb@x cert-authority {}\n",
            key.public_line, key.public_line
        ),
    )
    .unwrap();
    let err = TrustPolicy::load(Some(&path), &[], true).unwrap_err();
    assert!(
        matches!(&err, TrustError::Parse { line: 3, file, .. } if file == &path),
        "{err:?}"
    );
    assert!(
        err.to_string().starts_with(&format!(
            "{}:3: option cert-authority is not supported",
            path.display()
        )),
        "{err}"
    );
}

#[test]
fn trust_unsupported_signature_format() {
    let policy = TrustPolicy::load(None, &[], false).unwrap();
    let x509 = b"-----BEGIN SIGNED MESSAGE-----\nMIAGCSqGSIb3DQEHAqCAMIACAQEx\n-----END SIGNED MESSAGE-----";
    let err = verify(&policy, &commit(x509, PAYLOAD)).unwrap_err();
    assert!(matches!(err, TrustError::UnsupportedFormat(_)), "{err:?}");
    assert!(verify(&policy, &commit(b"garbage", PAYLOAD)).is_err());
}

// ---------------------------------------------------------------- real git commits

/// The signature and payload of HEAD, split the way gix's `Commit::signature()` does.
struct GitCommit {
    signature: Vec<u8>,
    payload: Vec<u8>,
    commit_time: i64,
}

fn git(repo: &Path) -> Command {
    let mut cmd = Command::new("git");
    cmd.current_dir(repo)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", repo)
        .env_remove("GIT_DIR")
        .args(["-c", "user.name=Test", "-c", "user.email=t@example.org"]);
    cmd
}

fn head_commit(repo: &Path) -> GitCommit {
    let out = run(git(repo).args(["cat-file", "commit", "HEAD"]), "git");
    split_gpgsig(&out.stdout)
}

/// Split `git cat-file commit` output: the `gpgsig` header (with its continuation lines) goes
/// out of the payload; its value, continuation-line spaces removed, is the signature.
fn split_gpgsig(raw: &[u8]) -> GitCommit {
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

fn init_repo(dir: &Path) -> PathBuf {
    let repo = dir.join("repo");
    std::fs::create_dir(&repo).unwrap();
    run(git(&repo).args(["init", "-q"]), "git");
    std::fs::write(repo.join("site.yml"), "- hosts: all\n").unwrap();
    run(git(&repo).args(["add", "site.yml"]), "git");
    repo
}

#[test]
fn trust_ssh_real_git_commit() {
    let dir = tempfile::tempdir().unwrap();
    let key = ed25519(dir.path(), "admin");
    let repo = init_repo(dir.path());
    let signers = dir.path().join("allowed_signers");
    std::fs::write(&signers, format!("admin@example.org {}\n", key.public_line)).unwrap();
    run(
        git(&repo)
            .args(["-c", "gpg.format=ssh", "-c"])
            .arg(format!("user.signingkey={}", key.private.display()))
            .args(["commit", "-q", "-S", "-m", "signed by ssh\n\nbody line"]),
        "git",
    );
    // git agrees the commit is good.
    run(
        git(&repo)
            .args(["-c", "gpg.format=ssh", "-c"])
            .arg(format!("gpg.ssh.allowedSignersFile={}", signers.display()))
            .args(["verify-commit", "HEAD"]),
        "git",
    );
    let c = head_commit(&repo);
    let policy = TrustPolicy::load(Some(&signers), &[], true).unwrap();
    let sc = SignedCommit {
        signature: Some(&c.signature),
        payload: &c.payload,
        commit_time: c.commit_time,
    };
    match verify(&policy, &sc) {
        Ok(Verdict::Trusted { signer, format, .. }) => {
            assert_eq!(signer, "admin@example.org");
            assert_eq!(format, SigFormat::Ssh);
        }
        other => panic!("{other:?}"),
    }
    // The committer time is what the window is checked against.
    let mut sc_late = sc;
    sc_late.commit_time = c.commit_time + 1;
    std::fs::write(
        &signers,
        format!(
            "admin@example.org valid-before=\"{}Z\" {}\n",
            jiff::Timestamp::from_second(c.commit_time)
                .unwrap()
                .strftime("%Y%m%d%H%M%S"),
            key.public_line
        ),
    )
    .unwrap();
    let policy = TrustPolicy::load(Some(&signers), &[], true).unwrap();
    assert!(verify(&policy, &sc).is_ok());
    assert!(matches!(
        verify(&policy, &sc_late),
        Err(TrustError::Expired { .. })
    ));

    // A trailing newline on the signature (as some callers keep it) changes nothing.
    let mut sig_nl = c.signature.clone();
    sig_nl.push(b'\n');
    assert!(verify(
        &policy,
        &SignedCommit {
            signature: Some(&sig_nl),
            ..sc
        }
    )
    .is_ok());
}

// ---------------------------------------------------------------- OpenPGP

/// A throw-away GNUPGHOME; its gpg-agent is stopped on drop.
struct GnuPg {
    home: tempfile::TempDir,
}

impl GnuPg {
    fn new() -> GnuPg {
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

    fn cmd(&self) -> Command {
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

    fn gpg(&self, args: &[&str]) -> Vec<u8> {
        run(self.cmd().args(args), "gnupg").stdout
    }

    /// A new ed25519 signing key; returns its fingerprint.
    fn gen_key(&self, uid: &str, extra: &[&str]) -> String {
        let mut args = extra.to_vec();
        args.extend(["--quick-gen-key", uid, "ed25519", "sign", "never"]);
        self.gpg(&args);
        self.fingerprint(uid)
    }

    fn fingerprint(&self, uid: &str) -> String {
        let out = String::from_utf8(self.gpg(&["--with-colons", "--list-keys", uid])).unwrap();
        out.lines()
            .find_map(|l| l.strip_prefix("fpr:"))
            .map(|l| l.trim_matches(':').to_string())
            .unwrap()
    }

    /// Fingerprints of all keys (primary first, then subkeys).
    fn all_fingerprints(&self, uid: &str) -> Vec<String> {
        let out = String::from_utf8(self.gpg(&["--with-colons", "--list-keys", uid])).unwrap();
        out.lines()
            .filter_map(|l| l.strip_prefix("fpr:"))
            .map(|l| l.trim_matches(':').to_string())
            .collect()
    }

    fn export(&self, uid: &str, path: &Path) {
        std::fs::write(path, self.gpg(&["--export", "--armor", uid])).unwrap();
    }

    fn sign(&self, uid: &str, payload: &[u8], extra: &[&str]) -> Vec<u8> {
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

fn pgp_policy(keys: &[PathBuf], require: bool) -> TrustPolicy {
    TrustPolicy::load(None, keys, require).unwrap()
}

#[test]
fn trust_openpgp_trusted_unknown_and_tampered() {
    let gpg = GnuPg::new();
    let fpr = gpg.gen_key("Test <t@example.org>", &[]);
    gpg.gen_key("Other <o@example.org>", &[]);
    let dir = tempfile::tempdir().unwrap();
    let test_pub = dir.path().join("test.asc");
    let other_pub = dir.path().join("other.asc");
    gpg.export("t@example.org", &test_pub);
    gpg.export("o@example.org", &other_pub);

    let sig = gpg.sign("t@example.org", PAYLOAD, &[]);
    let policy = pgp_policy(&[other_pub.clone(), test_pub.clone()], true);
    assert_eq!(policy.openpgp_keys.len(), 2);
    assert_eq!(policy.openpgp_keys[1].fingerprint, fpr);
    assert_eq!(
        verify(&policy, &commit(&sig, PAYLOAD)).unwrap(),
        Verdict::Trusted {
            signer: "Test <t@example.org>".into(),
            key: fpr.clone(),
            format: SigFormat::OpenPgp,
        }
    );

    let mut tampered = PAYLOAD.to_vec();
    tampered.push(b'x');
    let err = verify(&policy, &commit(&sig, &tampered)).unwrap_err();
    assert!(matches!(err, TrustError::BadSignature(_)), "{err:?}");

    for require in [true, false] {
        let only_other = pgp_policy(std::slice::from_ref(&other_pub), require);
        let err = verify(&only_other, &commit(&sig, PAYLOAD)).unwrap_err();
        assert!(
            matches!(&err, TrustError::UnknownKey { fingerprint, .. } if *fingerprint == fpr),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            format!("key {fpr} is not in the trusted OpenPGP keys")
        );
    }
    // SSH trust only: an OpenPGP signature is not trusted.
    let dir2 = tempfile::tempdir().unwrap();
    let policy = signers_policy(dir2.path(), "", false);
    let err = verify(&policy, &commit(&sig, PAYLOAD)).unwrap_err();
    assert!(err.to_string().contains("none are configured"), "{err}");

    // Several keys in one file, as `gpg --export --armor a b` writes them.
    let both = dir.path().join("both.asc");
    std::fs::write(
        &both,
        gpg.gpg(&["--export", "--armor", "t@example.org", "o@example.org"]),
    )
    .unwrap();
    let policy = pgp_policy(&[both], true);
    assert_eq!(policy.openpgp_keys.len(), 2);
    assert!(verify(&policy, &commit(&sig, PAYLOAD)).is_ok());
}

#[test]
fn trust_openpgp_signing_subkey_binary_key_and_key_file_errors() {
    let gpg = GnuPg::new();
    let primary = gpg.gen_key("Sub <s@example.org>", &[]);
    gpg.gpg(&["--quick-add-key", &primary, "ed25519", "sign", "never"]);
    let fprs = gpg.all_fingerprints("s@example.org");
    assert_eq!(fprs.len(), 2, "{fprs:?}");
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("sub.gpg");
    std::fs::write(&bin, gpg.gpg(&["--export", "s@example.org"])).unwrap();
    // gpg signs with the newest signing subkey.
    let sig = gpg.sign("s@example.org", PAYLOAD, &[]);
    let policy = pgp_policy(&[bin], true);
    assert_eq!(
        verify(&policy, &commit(&sig, PAYLOAD)).unwrap(),
        Verdict::Trusted {
            signer: "Sub <s@example.org>".into(),
            key: fprs[1].clone(),
            format: SigFormat::OpenPgp,
        }
    );

    // A secret key is not a public key file.
    let secret = dir.path().join("secret.asc");
    std::fs::write(
        &secret,
        gpg.gpg(&["--export-secret-keys", "--armor", "s@example.org"]),
    )
    .unwrap();
    let err = TrustPolicy::load(None, std::slice::from_ref(&secret), true).unwrap_err();
    assert!(
        matches!(&err, TrustError::KeyFile { file, .. } if *file == secret),
        "{err:?}"
    );
    let junk = dir.path().join("junk.asc");
    std::fs::write(&junk, "not a key\n").unwrap();
    assert!(TrustPolicy::load(None, &[junk], true).is_err());
}

#[test]
fn trust_openpgp_expired_and_revoked_keys() {
    let gpg = GnuPg::new();
    // Made on 2020-01-01, signs on 2020-02-01; later the key is set to expire on 2020-01-02.
    let fpr = gpg.gen_key(
        "Old <old@example.org>",
        &["--faked-system-time", "20200101T000000!"],
    );
    let sig = gpg.sign(
        "old@example.org",
        PAYLOAD,
        &["--faked-system-time", "20200201T000000!"],
    );
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("old.asc");
    gpg.export("old@example.org", &key_file);
    // Signed while valid (no expiry yet).
    assert!(matches!(
        verify(
            &pgp_policy(std::slice::from_ref(&key_file), true),
            &commit(&sig, PAYLOAD)
        ),
        Ok(Verdict::Trusted { .. })
    ));
    gpg.gpg(&[
        "--faked-system-time",
        "20200101T120000!",
        "--quick-set-expire",
        &fpr,
        "1d",
    ]);
    gpg.export("old@example.org", &key_file);
    let err = verify(
        &pgp_policy(std::slice::from_ref(&key_file), true),
        &commit(&sig, PAYLOAD),
    )
    .unwrap_err();
    assert!(matches!(err, TrustError::Expired { .. }), "{err:?}");
    assert!(
        err.to_string().contains("expired at 2020-01-02T12:00:00Z"),
        "{err}"
    );

    // Revoked.
    let gpg = GnuPg::new();
    let fpr = gpg.gen_key("Rev <rev@example.org>", &[]);
    let sig = gpg.sign("rev@example.org", PAYLOAD, &[]);
    let rev_cert = gpg
        .home
        .path()
        .join("openpgp-revocs.d")
        .join(format!("{fpr}.rev"));
    // gpg writes the revocation certificate with a leading ':' to defuse it.
    let text = std::fs::read_to_string(&rev_cert)
        .unwrap()
        .replace(":-----BEGIN", "-----BEGIN");
    let fixed = gpg.home.path().join("rev.asc");
    std::fs::write(&fixed, text).unwrap();
    gpg.gpg(&["--import", fixed.to_str().unwrap()]);
    gpg.export("rev@example.org", &key_file);
    let err = verify(
        &pgp_policy(std::slice::from_ref(&key_file), true),
        &commit(&sig, PAYLOAD),
    )
    .unwrap_err();
    assert!(matches!(err, TrustError::Revoked { .. }), "{err:?}");
}

#[test]
fn trust_openpgp_real_git_commit() {
    let gpg = GnuPg::new();
    let fpr = gpg.gen_key("Test <t@example.org>", &[]);
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("test.asc");
    gpg.export("t@example.org", &key_file);
    let repo = init_repo(dir.path());
    run(
        git(&repo)
            .env("GNUPGHOME", gpg.home.path())
            .args(["-c", "gpg.program=gpg", "-c"])
            .arg(format!("user.signingkey={fpr}"))
            .args(["commit", "-q", "-S", "-m", "signed by gpg"]),
        "git",
    );
    let c = head_commit(&repo);
    assert!(c.signature.starts_with(b"-----BEGIN PGP SIGNATURE-----"));
    let policy = pgp_policy(&[key_file], true);
    let sc = SignedCommit {
        signature: Some(&c.signature),
        payload: &c.payload,
        commit_time: c.commit_time,
    };
    match verify(&policy, &sc) {
        Ok(Verdict::Trusted {
            signer,
            key,
            format,
        }) => {
            assert_eq!(signer, "Test <t@example.org>");
            assert_eq!(key, fpr);
            assert_eq!(format, SigFormat::OpenPgp);
        }
        other => panic!("{other:?}"),
    }
}

// ---------------------------------------------------------------- speed

#[test]
fn trust_verification_time() {
    let dir = tempfile::tempdir().unwrap();
    let key = ed25519(dir.path(), "admin");
    let policy_ssh = signers_policy(dir.path(), &format!("admin@x {}\n", key.public_line), true);
    let ssh_sig = ssh_sign(dir.path(), &key, "git", PAYLOAD);
    let gpg = GnuPg::new();
    gpg.gen_key("Test <t@example.org>", &[]);
    let key_file = dir.path().join("t.asc");
    gpg.export("t@example.org", &key_file);
    let policy_pgp = pgp_policy(&[key_file], true);
    let pgp_sig = gpg.sign("t@example.org", PAYLOAD, &[]);

    for (name, policy, sig) in [
        ("ssh", &policy_ssh, &ssh_sig),
        ("openpgp", &policy_pgp, &pgp_sig),
    ] {
        let n = 50;
        let start = Instant::now();
        for _ in 0..n {
            assert!(verify(policy, &commit(sig, PAYLOAD)).is_ok());
        }
        let per = start.elapsed() / n;
        eprintln!("trust: {name} ed25519 verification: {per:?} per commit");
        // Generous bound for unoptimised test builds on a loaded machine; ~0.1 ms optimised.
        assert!(per.as_millis() < 50, "{name}: {per:?}");
    }
}
