//! `deb822_repository`: an APT source as a deb822 `.sources` file, written byte for byte as
//! ansible-core writes it: `/etc/apt/sources.list.d/<slug>.sources`, fields in the order of the
//! sorted argument names (`name` as `X-Repolib-Name`, `uris` as `URIs`, others title-cased with
//! `-`), booleans as `yes`/`no`, lists space-separated, a multi-line `signed_by` (an inline key)
//! indented with blank lines as ` .` (checked against ansible-core 2.19). As there, the cache is not updated: follow it with `apt: update_cache=yes`.

use std::path::PathBuf;

use minijinja::Value;

use super::apt_repository::sources_file_mode;
use crate::args::{to_bool, ArgDef, ArgSpec, ArgType, Args};
use crate::fsops;
use crate::resource::{
    Change, Check, Module, ModuleContext, ModuleError, Outcome, Owned, Resource,
};

pub struct Deb822RepositoryModule;

/// The deb822 fields, by argument name, sorted (the order ansible-core writes them in).
const FIELDS: &[(&str, ArgType)] = &[
    ("allow_downgrade_to_insecure", ArgType::Bool),
    ("allow_insecure", ArgType::Bool),
    ("allow_weak", ArgType::Bool),
    ("architectures", ArgType::List),
    ("by_hash", ArgType::Bool),
    ("check_date", ArgType::Bool),
    ("check_valid_until", ArgType::Bool),
    ("components", ArgType::List),
    ("date_max_future", ArgType::Int),
    ("enabled", ArgType::Bool),
    ("inrelease_path", ArgType::Str),
    ("languages", ArgType::List),
    ("name", ArgType::Str),
    ("pdiffs", ArgType::Bool),
    ("signed_by", ArgType::Str),
    ("suites", ArgType::List),
    ("targets", ArgType::List),
    ("trusted", ArgType::Bool),
    ("types", ArgType::List),
    ("uris", ArgType::List),
];

static SPEC: ArgSpec = ArgSpec {
    module: "deb822_repository",
    args: &[
        ArgDef::new("allow_downgrade_to_insecure", ArgType::Bool),
        ArgDef::new("allow_insecure", ArgType::Bool),
        ArgDef::new("allow_weak", ArgType::Bool),
        ArgDef::new("architectures", ArgType::List),
        ArgDef::new("by_hash", ArgType::Bool),
        ArgDef::new("check_date", ArgType::Bool),
        ArgDef::new("check_valid_until", ArgType::Bool),
        ArgDef::new("components", ArgType::List),
        ArgDef::new("date_max_future", ArgType::Int),
        ArgDef::new("enabled", ArgType::Bool),
        ArgDef::new("inrelease_path", ArgType::Str),
        ArgDef::new("languages", ArgType::List),
        ArgDef::new("name", ArgType::Str).required(),
        ArgDef::new("pdiffs", ArgType::Bool),
        ArgDef::new("signed_by", ArgType::Str),
        ArgDef::new("suites", ArgType::List),
        ArgDef::new("targets", ArgType::List),
        ArgDef::new("trusted", ArgType::Bool),
        ArgDef::new("types", ArgType::List).choices(&["deb", "deb-src"]),
        ArgDef::new("uris", ArgType::List),
        ArgDef::new("mode", ArgType::Mode),
        ArgDef::new("state", ArgType::Str).choices(&["absent", "present"]),
    ],
    free_form: false,
    mutually_exclusive: &[],
    required_one_of: &[],
};

const SOURCES_DIR: &str = "/etc/apt/sources.list.d";
const KEYRINGS_DIR: &str = "/etc/apt/keyrings";

/// ansible-core's file name: lower case, runs of `_`/space as `-`, anything else dropped.
fn slug(name: &str) -> String {
    let mut dashed = String::new();
    let mut in_run = false;
    for c in name.to_lowercase().chars() {
        if c == '_' || c.is_whitespace() {
            if !in_run {
                dashed.push('-');
            }
            in_run = true;
        } else {
            dashed.push(c);
            in_run = false;
        }
    }
    dashed
        .chars()
        .filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-')
        .collect()
}

fn field_name(arg: &str) -> String {
    match arg {
        "name" => "X-Repolib-Name".into(),
        "uris" => "URIs".into(),
        _ => arg
            .split('_')
            .map(|w| {
                let mut c = w.chars();
                match c.next() {
                    Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
                    None => String::new(),
                }
            })
            .collect::<Vec<_>>()
            .join("-"),
    }
}

fn list_text(v: &Value) -> String {
    match v.try_iter() {
        Ok(items) if v.as_str().is_none() => items
            .map(|i| crate::args::python_str(&i))
            .collect::<Vec<_>>()
            .join(" "),
        _ => crate::args::python_str(v),
    }
}

/// The `.sources` text for these arguments, as python-debian's `Deb822.dump()` writes it.
fn render(args: &Args) -> Result<String, ModuleError> {
    let mut out = String::new();
    for (arg, ty) in FIELDS {
        let value = match (args.get(arg), *arg) {
            (Some(v), _) if !v.is_none() => v.clone(),
            (_, "types") => Value::from(vec![Value::from("deb")]),
            _ => continue,
        };
        let mut text = match ty {
            ArgType::Bool => {
                let b = to_bool(&value)
                    .ok_or_else(|| ModuleError::new(format!("{arg}: not a boolean")))?;
                if b { "yes" } else { "no" }.to_string()
            }
            ArgType::List => list_text(&value),
            _ => crate::args::python_str(&value),
        };
        if *arg == "signed_by" && text.contains("://") {
            return Err(ModuleError::new(
                "signed_by: fetching a key from a URL is not supported: put the key in the \
                 repository and give its text or its path on the host",
            ));
        }
        if text.contains('\n') {
            let body: Vec<String> = text
                .trim()
                .lines()
                .map(|l| {
                    let t = l.trim();
                    format!("    {}", if t.is_empty() { "." } else { t })
                })
                .collect();
            text = format!("\n{}", body.join("\n"));
        }
        let name = field_name(arg);
        if text.starts_with('\n') || text.is_empty() {
            out.push_str(&format!("{name}:{text}\n"));
        } else {
            out.push_str(&format!("{name}: {text}\n"));
        }
    }
    Ok(out)
}

impl Module for Deb822RepositoryModule {
    fn spec(&self) -> &'static ArgSpec {
        &SPEC
    }

    fn prepare(&self, args: &Args, _ctx: &ModuleContext) -> Result<Box<dyn Resource>, ModuleError> {
        let name = args.str("name").unwrap_or_default();
        let slug = slug(&name);
        let mode = sources_file_mode(args)?;
        let present = args.str("state").as_deref() != Some("absent");
        Ok(Box::new(Deb822Repository {
            path: PathBuf::from(SOURCES_DIR).join(format!("{slug}.sources")),
            keys: ["asc", "gpg"]
                .iter()
                .map(|e| PathBuf::from(KEYRINGS_DIR).join(format!("{slug}.{e}")))
                .collect(),
            content: if present { Some(render(args)?) } else { None },
            mode,
        }))
    }
}

struct Deb822Repository {
    path: PathBuf,
    /// Keyrings ansible-core would have downloaded for this source (removed with it).
    keys: Vec<PathBuf>,
    /// None: `state: absent`.
    content: Option<String>,
    mode: u32,
}

impl Resource for Deb822Repository {
    fn check(&self) -> Result<Check, ModuleError> {
        let mut changes = Vec::new();
        let current = fsops::stat(&self.path)?;
        let outcome = Outcome::default()
            .with("dest", self.path.display().to_string())
            .with(
                "repo",
                self.content
                    .as_deref()
                    .map(Value::from)
                    .unwrap_or(Value::from(())),
            );
        match &self.content {
            None => {
                if current.is_some() {
                    changes.push(Change::Remove {
                        path: self.path.clone(),
                    });
                }
                for k in &self.keys {
                    if fsops::stat(k)?.is_some() {
                        changes.push(Change::Remove { path: k.clone() });
                    }
                }
            }
            Some(content) => {
                let before = match &current {
                    Some(_) => Some(std::fs::read(&self.path)?),
                    None => None,
                };
                if before.as_deref() != Some(content.as_bytes()) {
                    changes.push(Change::write_with_mode(
                        self.path.clone(),
                        content.as_bytes().to_vec(),
                        before,
                        self.mode,
                    ));
                } else if let Some(st) = &current {
                    if st.mode & 0o7777 != self.mode {
                        changes.push(Change::SetMode {
                            path: self.path.clone(),
                            from: st.mode & 0o7777,
                            to: self.mode,
                        });
                    }
                }
            }
        }
        Ok(Check::new(changes, outcome))
    }

    fn apply(&self, check: Check) -> Result<Outcome, ModuleError> {
        let changes = &check.changes;
        fsops::apply_all(changes)?;
        Ok(Outcome::default().with("dest", self.path.display().to_string()))
    }

    fn owns(&self) -> Vec<Owned> {
        vec![Owned::Path(self.path.clone())]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_and_field_names_as_ansible() {
        assert_eq!(slug("Docker CE_stable  repo!"), "docker-ce-stable-repo");
        assert_eq!(field_name("check_valid_until"), "Check-Valid-Until");
        assert_eq!(field_name("uris"), "URIs");
        assert_eq!(field_name("name"), "X-Repolib-Name");
    }
}
