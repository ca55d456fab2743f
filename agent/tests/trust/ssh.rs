//! SSH signatures (`gpg.format=ssh`) against an `allowed_signers` file: principals, key types,
//! unknown keys, tampering, namespaces, validity windows, unsigned commits, a policy without
//! keys, and a commit signed by `git commit -S`.

use std::process::Command;

use gitops_agent::trust::{verify, SigFormat, SignedCommit, TrustError, TrustPolicy, Verdict};

use crate::support::*;

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
