//! The `alternatives` module (`community.general.alternatives`), as its `alternatives.py`,
//! through `update-alternatives` (`--display` read with `LC_ALL=C`):
//!
//! - `present`/`selected`/`auto`: the alternative `path` is installed (`--install LINK NAME
//!   PATH PRIORITY`) when missing or its priority differs from `priority`; `link` defaults to
//!   the group's current link, `priority` to the current one or 50;
//! - `selected` then points the group at `path` (`--set`) unless it already does; `auto` puts
//!   a group in manual mode back to auto (`--auto`);
//! - `absent` removes `path` from the group (`--remove`) if it is in it.
//!
//! Refused when given: `family` and `subcommands` (`slaves`). The result has `msg` and, with
//! `--diff`, `diff` (`before`/`after`) as alternatives.py builds it.

use minijinja::Value;

use super::systool::{dict, exec, query, run_exec};
use crate::args::{ArgDef, ArgSpec, ArgType, Args};
use crate::resource::{Check, Module, ModuleContext, ModuleError, Outcome, Resource};

pub struct AlternativesModule;

static SPEC: ArgSpec = ArgSpec {
    module: "alternatives",
    args: &[
        ArgDef::new("name", ArgType::Str).required(),
        ArgDef::new("path", ArgType::Path),
        ArgDef::new("family", ArgType::Str),
        ArgDef::new("link", ArgType::Path),
        ArgDef::new("priority", ArgType::Int),
        ArgDef::new("state", ArgType::Str).choices(&["present", "selected", "absent", "auto"]),
        ArgDef::new("subcommands", ArgType::List).aliases(&["slaves"]),
    ],
    free_form: false,
    mutually_exclusive: &[],
    required_one_of: &[&["path", "family"]],
};

const TOOL: &str = "update-alternatives";

impl Module for AlternativesModule {
    fn spec(&self) -> &'static ArgSpec {
        &SPEC
    }

    fn prepare(&self, args: &Args, ctx: &ModuleContext) -> Result<Box<dyn Resource>, ModuleError> {
        for refused in ["family", "subcommands"] {
            if args.has(refused) {
                return Err(ModuleError::new(format!(
                    "alternatives: {refused} is not supported by the agent"
                )));
            }
        }
        Ok(Box::new(AlternativesResource {
            name: args.str("name").unwrap_or_default(),
            path: args.str("path").unwrap_or_default(),
            link: args.str("link"),
            priority: args.int("priority"),
            state: args.str("state").unwrap_or_else(|| "selected".into()),
            diff: ctx.diff,
        }))
    }
}

struct AlternativesResource {
    name: String,
    path: String,
    link: Option<String>,
    priority: Option<i64>,
    state: String,
    diff: bool,
}

/// What `update-alternatives --display NAME` says about a group.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Group {
    mode: Option<String>,
    current_path: Option<String>,
    link: Option<String>,
    /// path -> priority
    alternatives: Vec<(String, i64)>,
}

impl Group {
    fn priority_of(&self, path: &str) -> Option<i64> {
        self.alternatives
            .iter()
            .find(|(p, _)| p == path)
            .map(|(_, n)| *n)
    }
}

/// `\s-\s(?:status\sis\s)?(\w*)(?:\smode|.)$` on the first line that has it.
fn mode_of(line: &str) -> Option<String> {
    let word = |c: char| c.is_alphanumeric() || c == '_';
    let mut from = 0;
    while let Some(i) = line[from..].find(" - ").map(|i| i + from) {
        let rest = &line[i + 3..];
        let rest = rest.strip_prefix("status is ").unwrap_or(rest);
        let w: String = rest.chars().take_while(|c| word(*c)).collect();
        let tail = &rest[w.len()..];
        if tail == " mode" || tail.chars().count() == 1 {
            return Some(w);
        }
        // `(\w*).` : a shorter word followed by its last character.
        if tail.is_empty() && !w.is_empty() {
            return Some(w[..w.len() - w.chars().last().map_or(0, char::len_utf8)].to_string());
        }
        from = i + 1;
    }
    None
}

fn parse_display(out: &str) -> Group {
    let mut g = Group {
        mode: out.lines().find_map(mode_of),
        ..Group::default()
    };
    if g.mode.is_none() {
        return g;
    }
    for line in out.lines() {
        let t = line.trim_start();
        if let Some(p) = t.strip_prefix("link currently points to ") {
            g.current_path.get_or_insert_with(|| p.to_string());
        } else if let Some(rest) = t.strip_prefix("link ") {
            let (w, after) = rest.split_at(
                rest.find(|c: char| !(c.is_alphanumeric() || c == '_'))
                    .unwrap_or(rest.len()),
            );
            if let Some(l) = after.strip_prefix(" is ").filter(|_| !w.is_empty()) {
                g.link.get_or_insert_with(|| l.to_string());
            }
        }
        if line.starts_with('/') {
            if let Some((path, rest)) = line.rsplit_once(" - ") {
                let rest = match rest.strip_prefix("family ") {
                    Some(r) => r.split_once(' ').map_or("", |(_, r)| r),
                    None => rest,
                };
                if let Some(n) = rest
                    .strip_prefix("priority ")
                    .and_then(|n| n.split_whitespace().next())
                    .and_then(|n| n.parse().ok())
                {
                    g.alternatives.push((path.to_string(), n));
                }
            }
        }
    }
    g
}

impl AlternativesResource {
    fn read(&self) -> Result<Group, ModuleError> {
        let ran = query(&[TOOL, "--display", &self.name])?;
        Ok(if ran.ok() {
            parse_display(&ran.stdout)
        } else {
            Group::default()
        })
    }
}

fn pairs(items: Vec<(&str, Value)>) -> Value {
    dict(items)
}

impl Resource for AlternativesResource {
    fn check(&self) -> Result<Check, ModuleError> {
        let g = self.read()?;
        let (name, path) = (self.name.as_str(), self.path.as_str());
        let mut changes = Vec::new();
        let mut msgs = Vec::new();
        let known = g.priority_of(path);
        let mut before: Vec<(&str, Value)> = Vec::new();
        match known {
            Some(prio) => {
                before.push(("state", Value::from("present")));
                before.push(("path", Value::from(path)));
                before.push(("priority", Value::from(prio)));
                before.push(("link", Value::from(g.link.clone())));
                if g.mode.as_deref() == Some("manual") && g.current_path.as_deref() != Some(path) {
                    before[0].1 = Value::from("selected");
                }
            }
            None => before.push(("state", Value::from("absent"))),
        }
        let mut after: Vec<(&str, Value)> = Vec::new();
        if self.state == "absent" {
            if known.is_some() {
                changes.push(exec(
                    &[TOOL, "--remove", name, path],
                    format!("remove alternative {path} from {name}"),
                ));
                msgs.push(format!("Remove alternative '{path}' from '{name}'."));
                after = vec![("state", Value::from("absent"))];
            }
        } else {
            let priority = self.priority.or(known).unwrap_or(50);
            if known.is_none() || self.priority.is_some_and(|p| Some(p) != known) {
                if !std::path::Path::new(path).exists() {
                    return Err(ModuleError::new(format!(
                        "Specified path {path} does not exist"
                    )));
                }
                let Some(link) = self.link.clone().or(g.link.clone()) else {
                    return Err(ModuleError::new(
                        "Needed to install the alternative, but unable to do so as we are missing the link",
                    ));
                };
                changes.push(exec(
                    &[TOOL, "--install", &link, name, path, &priority.to_string()],
                    format!("install alternative {path} for {name}"),
                ));
                msgs.push(format!("Install alternative '{path}' for '{name}'."));
                after = vec![
                    ("state", Value::from("present")),
                    ("path", Value::from(path)),
                    ("family", Value::from(())),
                    ("priority", Value::from(priority)),
                    ("link", Value::from(link)),
                ];
            }
            let set_state = |after: &mut Vec<(&str, Value)>, s: &str| match after
                .iter_mut()
                .find(|(k, _)| *k == "state")
            {
                Some(e) => e.1 = Value::from(s),
                None => after.push(("state", Value::from(s))),
            };
            if self.state == "selected" && g.current_path.as_deref() != Some(path) {
                changes.push(exec(
                    &[TOOL, "--set", name, path],
                    format!("set alternative {name} to {path}"),
                ));
                msgs.push(format!("Set alternative '{path}' for '{name}'."));
                set_state(&mut after, "selected");
            }
            if self.state == "auto" && g.mode.as_deref() == Some("manual") {
                changes.push(exec(
                    &[TOOL, "--auto", name],
                    format!("set alternative {name} to auto"),
                ));
                msgs.push(format!("Set alternative to auto for '{name}'."));
                set_state(&mut after, "present");
            }
        }
        let (before, after) = if self.diff {
            (before, after)
        } else {
            (Vec::new(), Vec::new())
        };
        let outcome = Outcome::default()
            .with(
                "diff",
                dict([("before", pairs(before)), ("after", pairs(after))]),
            )
            .with("msg", msgs.join(" "));
        Ok(Check::new(changes, outcome))
    }

    fn apply(&self, check: Check) -> Result<Outcome, ModuleError> {
        for change in &check.changes {
            let ran = run_exec(change)?;
            if !ran.ok() {
                return Err(ModuleError::new(ran.failure()));
            }
        }
        Ok(check.outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DISPLAY: &str = "editor - manual mode
  link best version is /bin/nano
  link currently points to /usr/bin/vim.basic
  link editor is /usr/bin/editor
  slave editor.1.gz is /usr/share/man/man1/editor.1.gz
/bin/nano - priority 40
  slave editor.1.gz: /usr/share/man/man1/nano.1.gz
/usr/bin/vim.basic - priority 30
";

    #[test]
    fn parses_display() {
        let g = parse_display(DISPLAY);
        assert_eq!(g.mode.as_deref(), Some("manual"));
        assert_eq!(g.current_path.as_deref(), Some("/usr/bin/vim.basic"));
        assert_eq!(g.link.as_deref(), Some("/usr/bin/editor"));
        assert_eq!(
            g.alternatives,
            [
                ("/bin/nano".to_string(), 40),
                ("/usr/bin/vim.basic".to_string(), 30)
            ]
        );
        let auto = parse_display("x-www-browser - status is auto.\n  link currently points to /a\n  link x-www-browser is /usr/bin/x-www-browser\n/a - priority 5\n");
        assert_eq!(auto.mode.as_deref(), Some("auto"));
        // `link \w+ is`: a name with dashes gives no link, as in alternatives.py.
        assert_eq!(auto.link, None);
        assert_eq!(parse_display("nothing"), Group::default());
    }
}
