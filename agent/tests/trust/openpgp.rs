//! OpenPGP signatures against public key files: trusted, unknown and tampered, a signing subkey,
//! binary and broken key files, expired and revoked keys, and a commit signed by `git commit -S`
//! with gpg.

use gitops_agent::trust::{verify, SigFormat, SignedCommit, TrustError, TrustPolicy, Verdict};

use crate::support::*;

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
