//! gitops-modules: the desired-state language (an Ansible playbook subset), the engine that
//! converges a host through check/apply modules, and the modules themselves.
//!
//! This crate knows nothing of Git, async runtimes or the daemon: `gitops-agent` drives it.

pub mod ansible_cfg;
pub mod args;
pub mod bridge;
pub mod engine;
pub mod error;
pub mod facts;
pub mod fsops;
pub mod host;
pub mod http;
pub mod inventory;
pub mod lookup;
pub mod magic;
pub mod mode;
pub mod modules;
pub mod playbook;
pub mod process;
pub mod report;
pub mod resource;
pub mod shlex;
pub mod source;
pub mod template;
pub mod vars;
pub mod yaml;
