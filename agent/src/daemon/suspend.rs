//! `gitops-agent suspend [--reason TEXT]` and `resume`: a flag in `state.json`, so it survives a
//! restart. While it is set, converges (the daemon's and one-shot ones) still fetch and report
//! `result: suspended` with the reason in the status, but apply nothing.
//!
//! Both take the converge lock: `state.json` is rewritten by every converge, so a suspension
//! written in the middle of one would be lost. A converge in progress finishes first.

use std::path::Path;

use crate::cli::{exit, StatusArgs, SuspendArgs};
use crate::config::{Config, ConfigError, DEFAULT_CONFIG_PATH};
use crate::state::{State, StateLock};

fn state_dir(args: &StatusArgs) -> Result<std::path::PathBuf, ConfigError> {
    if let Some(dir) = &args.state_dir {
        return Ok(dir.clone());
    }
    let config = if args.config == Path::new(DEFAULT_CONFIG_PATH) {
        Config::load_or_default(&args.config)
    } else {
        Config::load(&args.config)
    };
    config.map(|c| c.state_dir)
}

/// Sets (`Some(reason)`) or clears (`None`) the suspension. Returns the exit code.
fn set(args: &StatusArgs, suspend: Option<String>) -> i32 {
    let dir = match state_dir(args) {
        Ok(d) => d,
        Err(e) => {
            tracing::error!("{e}");
            return exit::INVALID;
        }
    };
    let _lock = match StateLock::try_acquire(&dir) {
        Ok(l) => l,
        Err(busy @ crate::state::LockError::Busy { .. }) => {
            tracing::warn!("{busy}: waiting for it to finish");
            match StateLock::acquire(&dir, true) {
                Ok(l) => l,
                Err(e) => {
                    tracing::error!("{e}");
                    return exit::FAILED;
                }
            }
        }
        Err(e) => {
            tracing::error!("{e}");
            return exit::FAILED;
        }
    };
    let mut state = match State::load(&dir) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("{e}");
            return exit::FAILED;
        }
    };
    let was = state.suspended;
    state.suspended = suspend.is_some();
    state.suspended_reason = suspend.clone();
    if let Err(e) = state.save(&dir) {
        tracing::error!("{e}");
        return exit::FAILED;
    }
    match (suspend, was) {
        (Some(reason), _) => println!(
            "suspended: {reason}\nThe daemon keeps polling and reporting `suspended` but applies \
             nothing until `gitops-agent resume` (from its next poll; SIGUSR1 polls now)."
        ),
        (None, true) => {
            println!("resumed: the next poll converges again (SIGUSR1 to the daemon polls now).")
        }
        (None, false) => println!("not suspended: nothing to resume."),
    }
    exit::OK
}

pub fn suspend(args: &SuspendArgs) -> i32 {
    let reason = args
        .reason
        .clone()
        .map(|r| r.trim().to_string())
        .filter(|r| !r.is_empty())
        .unwrap_or_else(|| "suspended by an operator".to_string());
    set(&args.target, Some(reason))
}

pub fn resume(args: &StatusArgs) -> i32 {
    set(args, None)
}
