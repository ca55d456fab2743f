//! Lookups of the host and of the task's variables: `env`, `vars`, `lines`, `pipe`.

use std::path::Path;
use std::process::Command;

use minijinja::{Error, Value};

use super::{err, term_str, Call, Frame};

/// `env`: each variable's value in the agent's environment; `default` (`''` unless given) when
/// it is unset.
pub(super) fn env(terms: Vec<Value>, call: &Call) -> Result<Vec<Value>, Error> {
    let default = call.kwargs.get::<Option<Value>>("default")?;
    let mut out = Vec::with_capacity(terms.len());
    for t in &terms {
        let term = term_str(t, "env")?;
        let name = term.split_whitespace().next().unwrap_or_default();
        out.push(match std::env::var(name) {
            Ok(v) => Value::from(v),
            Err(_) => default.clone().unwrap_or(Value::from("")),
        });
    }
    Ok(out)
}

/// `vars`: each named variable's value (the loop item and template locals included);
/// `default` when there is none, else an undefined value.
pub(super) fn vars(terms: Vec<Value>, call: &Call) -> Result<Vec<Value>, Error> {
    let default = call
        .kwargs
        .get::<Option<Value>>("default")?
        .filter(|d| !d.is_none());
    let mut out = Vec::with_capacity(terms.len());
    for t in &terms {
        let Some(name) = t.as_str() else {
            return Err(err(format!("Variable name must be 'str' not '{t}'.")));
        };
        let found = match call.state {
            Some(state) => state.lookup(name),
            None => super::with_frame(|fr| fr.and_then(|fr| fr.vars.get_attr(name).ok())),
        }
        .filter(|v| !v.is_undefined());
        out.push(match found {
            Some(v) => v,
            None => default.clone().unwrap_or(Value::UNDEFINED),
        });
    }
    Ok(out)
}

/// `varnames`: the names of the task's variables matching each regular expression (Python
/// `re.search`), term after term, in the variables' order.
pub(super) fn varnames(terms: Vec<Value>, fr: &Frame) -> Result<Vec<Value>, Error> {
    let names: Vec<Value> = fr.vars.try_iter()?.collect();
    let mut out = Vec::new();
    for t in &terms {
        let Some(term) = t.as_str() else {
            return Err(err(format!(
                "Invalid setting identifier, \"{t}\" is not a string"
            )));
        };
        let re =
            crate::template::filters::regex::compile_regex(term, false, false).map_err(|e| {
                err(format!(
                    "Unable to use \"{term}\" as a search parameter: {e}"
                ))
            })?;
        out.extend(
            names
                .iter()
                .filter(|n| n.as_str().is_some_and(|n| re.is_match(n)))
                .cloned(),
        );
    }
    Ok(out)
}

/// Runs `term` with `/bin/sh -c` in the playbook's directory (when it is one on this host).
fn shell(term: &str, fr: Option<&Frame>, lookup: &str) -> Result<String, Error> {
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c").arg(term);
    if let Some(fr) = fr {
        let dir = Path::new(fr.playbook_dir);
        if dir.is_dir() {
            cmd.current_dir(dir);
        }
    }
    let ran = crate::process::run(&mut cmd).map_err(|e| err(e.to_string()))?;
    if !ran.ok() {
        return Err(err(format!(
            "lookup_plugin.{lookup}({term}) returned {}",
            ran.rc
        )));
    }
    Ok(ran.stdout)
}

/// `lines`: each command's output, one item per line.
pub(super) fn lines(terms: Vec<Value>, fr: Option<&Frame>) -> Result<Vec<Value>, Error> {
    let mut out = Vec::new();
    for t in &terms {
        let stdout = shell(&term_str(t, "lines")?, fr, "lines")?;
        out.extend(stdout.lines().map(Value::from));
    }
    Ok(out)
}

/// `pipe`: each command's output, trailing whitespace removed.
pub(super) fn pipe(terms: Vec<Value>, fr: Option<&Frame>) -> Result<Vec<Value>, Error> {
    let mut out = Vec::new();
    for t in &terms {
        let stdout = shell(&term_str(t, "pipe")?, fr, "pipe")?;
        out.push(Value::from(stdout.trim_end()));
    }
    Ok(out)
}
