//! Unit tests that need no outside tool. The tests with keys and signatures made by `ssh-keygen`,
//! `gpg` and `git` are in the integration tier: `agent/tests/trust/`.

use super::*;

#[test]
fn trust_unsupported_signature_format() {
    let policy = TrustPolicy::load(None, &[], false).unwrap();
    let commit = |signature: &'static [u8]| SignedCommit {
        signature: Some(signature),
        payload: b"tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904\n\nmessage\n",
        commit_time: 1_700_000_000,
    };
    let x509 = b"-----BEGIN SIGNED MESSAGE-----\nMIAGCSqGSIb3DQEHAqCAMIACAQEx\n-----END SIGNED MESSAGE-----";
    let err = verify(&policy, &commit(x509)).unwrap_err();
    assert!(matches!(err, TrustError::UnsupportedFormat(_)), "{err:?}");
    assert!(verify(&policy, &commit(b"garbage")).is_err());
}
