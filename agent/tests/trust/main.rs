//! Commit signature verification (`gitops_agent::trust`) with keys and signatures made at test
//! time by `ssh-keygen`, `gpg` and `git` (tests/setup-host.sh installs them). The verification
//! itself is pure Rust; only the making of the keys needs the tools, which is why these tests are
//! not in `cargo test --lib`. How long a verification takes: `cargo bench -p gitops-agent --bench
//! verify`.

mod openpgp;
mod ssh;
mod support;
