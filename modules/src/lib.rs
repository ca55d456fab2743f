//! gitops-modules: the desired-state language (an Ansible playbook subset), the engine that
//! converges a host through check/apply modules, and the modules themselves.
//!
//! This crate knows nothing of Git, async runtimes or the daemon: `gitops-agent` drives it.

pub mod facts;
pub mod template;
