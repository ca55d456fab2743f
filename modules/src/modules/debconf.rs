//! The `debconf` module, as ansible-core's `debconf.py`: a package's answers are read with
//! `debconf-show PKG` (passwords with `debconf-get-selections`), and a differing answer is set
//! by feeding `PKG QUESTION VTYPE VALUE` to `debconf-set-selections` (`-u` with `unseen`).
//! Booleans compare lowercased; a `multiselect` list compares sorted and is written joined
//! with `, `.
//!
//! Refused when reached: a non-text `value` other than a boolean answer or a multiselect list
//! (debconf.py cannot join it either). The result has `msg`, `current`, `previous` and, with
//! `--diff`, `diff`.

use std::io::Write;
use std::process::{Command, Stdio};

use indexmap::IndexMap;
use minijinja::value::ValueKind;
use minijinja::Value;

use super::systool::{dict, exec, query};
use crate::args::{python_str, ArgDef, ArgSpec, ArgType, Args};
use crate::resource::{Change, Check, Module, ModuleContext, ModuleError, Outcome, Resource};

pub struct DebconfModule;

static SPEC: ArgSpec = ArgSpec {
    module: "debconf",
    args: &[
        ArgDef::new("name", ArgType::Str)
            .aliases(&["pkg"])
            .required(),
        ArgDef::new("question", ArgType::Str).aliases(&["selection", "setting"]),
        ArgDef::new("vtype", ArgType::Str).choices(&[
            "boolean",
            "error",
            "multiselect",
            "note",
            "password",
            "seen",
            "select",
            "string",
            "text",
            "title",
        ]),
        ArgDef::new("value", ArgType::Raw).aliases(&["answer"]),
        ArgDef::new("unseen", ArgType::Bool),
    ],
    free_form: false,
    mutually_exclusive: &[],
    required_one_of: &[],
};

/// The answer a task wants.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Answer {
    Text(String),
    /// A multiselect given as a list (sorted).
    List(Vec<String>),
}

impl Answer {
    fn written(&self) -> String {
        match self {
            Answer::Text(t) => t.clone(),
            Answer::List(l) => l.join(", "),
        }
    }

    fn value(&self) -> Value {
        match self {
            Answer::Text(t) => Value::from(t.as_str()),
            Answer::List(l) => Value::from_iter(l.iter().map(|s| Value::from(s.as_str()))),
        }
    }
}

struct Question {
    question: String,
    vtype: String,
    answer: Answer,
}

impl Module for DebconfModule {
    fn spec(&self) -> &'static ArgSpec {
        &SPEC
    }

    fn prepare(&self, args: &Args, ctx: &ModuleContext) -> Result<Box<dyn Resource>, ModuleError> {
        let given: Vec<&str> = ["question", "vtype", "value"]
            .into_iter()
            .filter(|k| args.has(k))
            .collect();
        if !given.is_empty() && given.len() < 3 {
            return Err(ModuleError::new(
                "parameters are required together: question, vtype, value",
            ));
        }
        let question = match args.str("question") {
            None => None,
            Some(q) => {
                let vtype = args.str("vtype").unwrap_or_default();
                let raw = args.get("value").cloned().unwrap_or_default();
                Some(Question {
                    answer: answer(&vtype, &raw)?,
                    question: q,
                    vtype,
                })
            }
        };
        Ok(Box::new(DebconfResource {
            pkg: args.str("name").unwrap_or_default(),
            question,
            unseen: args.bool_or("unseen", false),
            diff: ctx.diff,
        }))
    }
}

fn answer(vtype: &str, raw: &Value) -> Result<Answer, ModuleError> {
    if vtype == "boolean" {
        return Ok(Answer::Text(python_str(raw).to_lowercase()));
    }
    if vtype == "multiselect" && raw.kind() == ValueKind::Seq {
        let mut items = Vec::new();
        for v in raw.try_iter().into_iter().flatten() {
            match v.as_str() {
                Some(s) => items.push(s.to_string()),
                None => {
                    return Err(ModuleError::new(
                        "Invalid value provided for 'multiselect': the items must be strings",
                    ))
                }
            }
        }
        items.sort();
        return Ok(Answer::List(items));
    }
    match raw.as_str() {
        Some(s) => Ok(Answer::Text(s.to_string())),
        None => Err(ModuleError::new(format!(
            "debconf: value {} is not text; the agent, like debconf.py, only writes text \
             answers (quote it)",
            python_str(raw)
        ))),
    }
}

struct DebconfResource {
    pkg: String,
    question: Option<Question>,
    unseen: bool,
    diff: bool,
}

/// `debconf-show`'s lines: `[*] question: value`.
fn parse_show(out: &str) -> IndexMap<String, String> {
    out.lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| {
            (
                k.trim().trim_matches('*').trim().to_string(),
                v.trim().to_string(),
            )
        })
        .collect()
}

/// The stored password answer (`debconf-get-selections`: `pkg\tquestion\tvtype\tvalue`).
fn password_value(out: &str, pkg: &str, question: &str, vtype: &str) -> String {
    for line in out.split('\n') {
        if !line.starts_with(pkg) {
            continue;
        }
        let f: Vec<&str> = line.split('\t').collect();
        if f.len() <= 3 {
            return String::new();
        }
        if f[1] == question && f[2] == vtype {
            return f[3].to_string();
        }
    }
    String::new()
}

fn str_map(m: &IndexMap<String, String>) -> Value {
    dict(m.iter().map(|(k, v)| (k.clone(), Value::from(v.as_str()))))
}

impl DebconfResource {
    fn selections(&self) -> Result<IndexMap<String, String>, ModuleError> {
        let ran = query(&["debconf-show", &self.pkg])?;
        if !ran.ok() {
            return Err(ModuleError::new(ran.stderr));
        }
        Ok(parse_show(&ran.stdout))
    }

    fn existing(&self, q: &Question, prev: &str) -> Result<Answer, ModuleError> {
        Ok(match (q.vtype.as_str(), &q.answer) {
            ("boolean", _) => Answer::Text(prev.to_lowercase()),
            ("password", _) => {
                let ran = query(&["debconf-get-selections"])?;
                if !ran.ok() {
                    return Err(ModuleError::new(format!(
                        "Failed to get the value '{}' from '{}': {}",
                        q.question, self.pkg, ran.stderr
                    )));
                }
                Answer::Text(password_value(
                    &ran.stdout,
                    &self.pkg,
                    &q.question,
                    &q.vtype,
                ))
            }
            ("multiselect", Answer::List(_)) => {
                let mut items: Vec<String> =
                    prev.split(',').map(|s| s.trim().to_string()).collect();
                items.sort();
                Answer::List(items)
            }
            _ => Answer::Text(prev.to_string()),
        })
    }
}

impl Resource for DebconfResource {
    fn check(&self) -> Result<Check, ModuleError> {
        let prev = self.selections()?;
        let Some(q) = &self.question else {
            return Ok(Check::new(
                Vec::new(),
                Outcome::default()
                    .with("msg", "")
                    .with("current", str_map(&prev)),
            ));
        };
        let changed = match prev.get(&q.question) {
            None => true,
            Some(p) => self.existing(q, p)? != q.answer,
        };
        if !changed {
            return Ok(Check::new(
                Vec::new(),
                Outcome::default()
                    .with("msg", "")
                    .with("current", str_map(&prev)),
            ));
        }
        let previous = IndexMap::from([(
            q.question.clone(),
            prev.get(&q.question).cloned().unwrap_or_default(),
        )]);
        let current = dict([(q.question.clone(), q.answer.value())]);
        let mut outcome = Outcome::default()
            .with("msg", "")
            .with("current", current.clone())
            .with("previous", str_map(&previous));
        let diff = if self.diff {
            dict([("before", str_map(&previous)), ("after", current)])
        } else {
            dict(Vec::<(String, Value)>::new())
        };
        outcome = outcome.with("diff", diff);
        let mut argv = vec!["debconf-set-selections"];
        if self.unseen {
            argv.push("-u");
        }
        Ok(Check::new(
            vec![exec(
                &argv,
                format!("set debconf {} {} {}", self.pkg, q.question, q.vtype),
            )],
            outcome,
        ))
    }

    fn apply(&self, check: Check) -> Result<Outcome, ModuleError> {
        let Some(q) = &self.question else {
            return Ok(check.outcome);
        };
        let data = [
            self.pkg.as_str(),
            &q.question,
            &q.vtype,
            &q.answer.written(),
        ]
        .join(" ");
        let mut out = check.outcome;
        for change in &check.changes {
            let Change::Exec { argv, .. } = change else {
                continue;
            };
            let stdout = feed(argv, &data)?;
            out = out.with("msg", stdout);
        }
        Ok(out)
    }
}

/// Runs `argv` with `data` on its stdin; its stderr is the error.
fn feed(argv: &[String], data: &str) -> Result<String, ModuleError> {
    let Some((program, args)) = argv.split_first() else {
        return Err(ModuleError::new("empty command"));
    };
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| ModuleError::new(format!("cannot run {program}: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(data.as_bytes())?;
    }
    let out = child.wait_with_output()?;
    if !out.status.success() {
        return Err(ModuleError::new(
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_debconf_show_and_get_selections() {
        let m = parse_show("* tzdata/Areas: Europe\n  tzdata/Zones/Etc: UTC\n");
        assert_eq!(m["tzdata/Areas"], "Europe");
        assert_eq!(m["tzdata/Zones/Etc"], "UTC");
        let sel = "mysql-server\tmysql-server/root_password\tpassword\tsecret\n";
        assert_eq!(
            password_value(
                sel,
                "mysql-server",
                "mysql-server/root_password",
                "password"
            ),
            "secret"
        );
    }

    #[test]
    fn answers() {
        assert_eq!(
            answer("boolean", &Value::from(true)).unwrap(),
            Answer::Text("true".into())
        );
        assert_eq!(
            answer(
                "multiselect",
                &Value::from_iter(["b", "a"].map(Value::from))
            )
            .unwrap(),
            Answer::List(vec!["a".into(), "b".into()])
        );
        assert_eq!(Answer::List(vec!["a".into(), "b".into()]).written(), "a, b");
        assert!(answer("string", &Value::from(3)).is_err());
    }
}
