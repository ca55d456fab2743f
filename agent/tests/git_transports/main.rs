//! The Git layer against real servers on 127.0.0.1: `file://`, a plain path, `git daemon`
//! (`git://`), `git http-backend` behind a small CGI bridge (`http://`) and `sshd -f own_config`
//! (`ssh://`). Needs `git`, `python3`, `sshd` and `ssh-keygen` (tests/setup-host.sh installs
//! them); a missing tool fails the test, nothing is skipped. The library's own tests
//! (`cargo test --lib`) need none of them.

mod cli_push;
#[path = "../common/mod.rs"]
mod common;
mod fetch;
mod pull_ssh;
mod status_push;
mod support;
