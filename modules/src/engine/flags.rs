//! Boolean keywords given as templates (`no_log: "{{ debops__no_log | d(True) }}"`): kept as
//! written while blocks and roles pass them down, rendered with the task's variables when the
//! task runs. And `become_user`: the agent runs as root, so becoming another user fails then.

use minijinja::Value;

use super::Inherit;
use crate::args::{python_str, to_bool};
use crate::playbook::{Common, Flag};
use crate::template::Templar;

impl Inherit {
    /// The keywords of a play, role entry, block or task over what encloses it.
    pub(super) fn with_flags(&mut self, c: &Common) {
        for (flag, key) in [
            (&c.ignore_errors, "ignore_errors"),
            (&c.no_log, "no_log"),
            (&c.check_mode, "check_mode"),
            (&c.diff, "diff"),
            (&c.become_, "become"),
            (&c.run_once, "run_once"),
        ] {
            match flag {
                None => {}
                Some(Flag::Literal(b)) => {
                    self.pending.retain(|p| flag_key(p) != key);
                    *self.slot(key) = Some(*b);
                }
                Some(t) => {
                    self.pending.retain(|p| flag_key(p) != key);
                    self.pending.push(t.clone());
                }
            }
        }
        if c.become_user.is_some() {
            self.become_user = c.become_user.clone();
        }
    }

    fn slot(&mut self, key: &str) -> &mut Option<bool> {
        match key {
            "ignore_errors" => &mut self.ignore_errors,
            "no_log" => &mut self.no_log,
            "check_mode" => &mut self.check_mode,
            "diff" => &mut self.diff,
            "become" => &mut self.become_,
            _ => &mut self.run_once,
        }
    }

    /// Renders the templated keywords with the task's variables; then refuses a `become` to
    /// another user than root. The error names the file, line and keyword.
    pub(super) fn resolve_flags(&mut self, templar: &Templar, vars: &Value) -> Result<(), String> {
        for p in std::mem::take(&mut self.pending) {
            let Flag::Template {
                text,
                key,
                location,
            } = &p
            else {
                continue;
            };
            let v = templar
                .render_str(text, vars)
                .map_err(|e| format!("{location}: `{key}`: {e}"))?;
            let b = to_bool(&v).ok_or_else(|| {
                format!(
                    "{location}: `{key}`: `{text}` gives `{}`, not a boolean",
                    python_str(&v)
                )
            })?;
            *self.slot(key) = Some(b);
        }
        if self.become_ == Some(true) {
            if let Some((user, location)) = &self.become_user {
                let user = templar
                    .render_value(user, vars)
                    .map_err(|e| format!("{location}: `become_user`: {e}"))?;
                let user = python_str(&user);
                if !user.is_empty() && user != "root" {
                    return Err(format!(
                        "{location}: `become_user: {user}` is not supported: the agent runs \
                         tasks as root only"
                    ));
                }
            }
        }
        Ok(())
    }
}

fn flag_key(f: &Flag) -> &'static str {
    match f {
        Flag::Template { key, .. } => key,
        Flag::Literal(_) => "",
    }
}
