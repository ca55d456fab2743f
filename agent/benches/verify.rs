//! How long one commit signature verification takes, SSH (ed25519) and OpenPGP (ed25519), with
//! keys made by `ssh-keygen` and `gpg`. Prints figures; asserts nothing (run by hand:
//! `cargo bench -p gitops-agent --bench verify`; about 0.1 ms per commit optimised).

use std::time::Instant;

use gitops_agent::trust::verify;

#[path = "../tests/trust/support.rs"]
#[allow(dead_code)]
mod support;

use support::*;

fn main() {
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
        let n = 200;
        let start = Instant::now();
        for _ in 0..n {
            verify(policy, &commit(sig, PAYLOAD)).expect("a good signature");
        }
        let per = start.elapsed() / n;
        println!("trust: {name} ed25519 verification: {per:?} per commit (n={n})");
    }
}
