//! Local facts (`ansible_local`): each `*.fact` file of `fact_path`, run when executable, read
//! otherwise, its JSON under the file's base name, as Ansible's `local` collector does. INI
//! content (which Ansible reads with Python's ConfigParser) is refused: the task fails.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use indexmap::IndexMap;
use minijinja::Value;

use crate::resource::ModuleError;

/// The `local` fact: `{}` when `fact_path` does not exist.
pub(crate) fn local_facts(fact_path: &Path) -> Result<Value, ModuleError> {
    let mut local: IndexMap<String, Value> = IndexMap::new();
    let Ok(entries) = std::fs::read_dir(fact_path) else {
        return Ok(crate::vars::map_value(local));
    };
    let mut files: Vec<_> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.ends_with(".fact") && !n.starts_with('.'))
        })
        .collect();
    files.sort();
    for file in files {
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().replace(".fact", ""))
            .unwrap_or_default();
        local.insert(name, one_fact(&file)?);
    }
    Ok(crate::vars::map_value(local))
}

/// One fact file's value, or Ansible's message for a file it could not use (a value, not an
/// error, as in Ansible).
fn one_fact(file: &Path) -> Result<Value, ModuleError> {
    let shown = file.display();
    let meta = match std::fs::metadata(file) {
        Ok(m) => m,
        Err(e) => return Ok(Value::from(format!("Could not stat fact ({shown}): {e}"))),
    };
    let bytes = if meta.permissions().mode() & 0o100 != 0 {
        match crate::process::run(&mut Command::new(file)) {
            Ok(ran) if ran.ok() => ran.stdout.into_bytes(),
            Ok(ran) => {
                return Ok(Value::from(format!(
                    "Failure executing fact script ({shown}), rc: {}, err: {}",
                    ran.rc, ran.stderr
                )))
            }
            Err(e) => {
                return Ok(Value::from(format!(
                    "Could not execute fact script ({shown}): {e}"
                )))
            }
        }
    } else {
        std::fs::read(file).unwrap_or_default()
    };
    let Ok(text) = String::from_utf8(bytes) else {
        return Ok(Value::from(format!(
            "error loading fact - output of running \"{shown}\" was not utf-8"
        )));
    };
    if let Ok(json) = serde_json::from_str::<serde_json::Value>(&text) {
        return Ok(json_value(json));
    }
    match parse_ini(&text) {
        Ok(sections) => Ok(crate::vars::map_value(sections.into_iter().map(
            |(k, v)| {
                (
                    k,
                    crate::vars::map_value(v.into_iter().map(|(o, x)| (o, Value::from(x)))),
                )
            },
        ))),
        Err(IniError::Invalid) => Ok(Value::from(format!(
            "error loading facts as JSON or ini - please check content: {shown}"
        ))),
        Err(IniError::Interpolation) => Err(ModuleError::new(format!(
            "local fact {shown}: a value with `%` (Python ConfigParser interpolation) is not \
             supported by the agent; write the fact as JSON"
        ))),
    }
}

/// Why INI text was not read.
#[derive(Debug, PartialEq)]
enum IniError {
    /// What ConfigParser refuses (Ansible then stores its error text as the fact).
    Invalid,
    /// A `%` the agent does not interpolate.
    Interpolation,
}

type Sections = IndexMap<String, IndexMap<String, String>>;

/// Python's `ConfigParser` with its defaults: `[section]` headers, `key = value` or
/// `key: value` (keys lowercased, values stripped), `#`/`;` comment lines, indented
/// continuation lines, `DEFAULT` options given to every section; duplicates and options outside
/// a section are errors.
fn parse_ini(text: &str) -> Result<Sections, IniError> {
    let mut defaults: IndexMap<String, String> = IndexMap::new();
    let mut sections: Sections = IndexMap::new();
    let mut current: Option<String> = None;
    let mut last_key: Option<String> = None;
    for line in text.lines() {
        let stripped = line.trim();
        if stripped.starts_with('#') || stripped.starts_with(';') {
            continue;
        }
        if stripped.is_empty() {
            last_key = None;
            continue;
        }
        let indented = line.starts_with(char::is_whitespace);
        if indented {
            if let (Some(sec), Some(key)) = (&current, &last_key) {
                let target = if sec == "DEFAULT" {
                    &mut defaults
                } else {
                    sections.get_mut(sec).ok_or(IniError::Invalid)?
                };
                if let Some(v) = target.get_mut(key) {
                    v.push('\n');
                    v.push_str(stripped);
                    continue;
                }
            }
        }
        if let Some(name) = stripped.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
            if name != "DEFAULT" && sections.contains_key(name) {
                return Err(IniError::Invalid);
            }
            if name != "DEFAULT" {
                sections.insert(name.to_string(), IndexMap::new());
            }
            current = Some(name.to_string());
            last_key = None;
            continue;
        }
        let Some(sec) = &current else {
            return Err(IniError::Invalid);
        };
        let at = stripped.find(['=', ':']).ok_or(IniError::Invalid)?;
        let key = stripped[..at].trim().to_lowercase();
        let value = stripped[at + 1..].trim().to_string();
        if key.is_empty() {
            return Err(IniError::Invalid);
        }
        let target = if sec == "DEFAULT" {
            &mut defaults
        } else {
            sections.get_mut(sec).ok_or(IniError::Invalid)?
        };
        if target.contains_key(&key) {
            return Err(IniError::Invalid);
        }
        target.insert(key.clone(), value);
        last_key = Some(key);
    }
    for options in sections.values_mut() {
        for (k, v) in &defaults {
            options.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    if sections
        .values()
        .flat_map(|o| o.values())
        .any(|v| v.contains('%'))
    {
        return Err(IniError::Interpolation);
    }
    Ok(sections)
}

/// JSON as a template value (objects keep their order).
fn json_value(j: serde_json::Value) -> Value {
    match j {
        serde_json::Value::Null => Value::from(()),
        serde_json::Value::Bool(b) => Value::from(b),
        serde_json::Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => Value::from(i),
            (None, Some(u)) => Value::from(u),
            _ => Value::from(n.as_f64().unwrap_or(0.0)),
        },
        serde_json::Value::String(s) => Value::from(s),
        serde_json::Value::Array(a) => {
            Value::from(a.into_iter().map(json_value).collect::<Vec<_>>())
        }
        serde_json::Value::Object(o) => {
            crate::vars::map_value(o.into_iter().map(|(k, v)| (k, json_value(v))))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_files_and_scripts() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            local_facts(&dir.path().join("none")).unwrap().len(),
            Some(0)
        );
        std::fs::write(dir.path().join("app.fact"), r#"{"port": 80}"#).unwrap();
        let script = dir.path().join("gen.fact");
        std::fs::write(&script, "#!/bin/sh\necho '[1, 2]'\n").unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(dir.path().join("other.txt"), "x").unwrap();
        let v = local_facts(dir.path()).unwrap();
        assert_eq!(v.to_string(), "{'app': {'port': 80}, 'gen': [1, 2]}");
        std::fs::write(dir.path().join("ini.fact"), "[s]\nk=%(x)s\n").unwrap();
        let e = local_facts(dir.path()).unwrap_err();
        assert!(e.0.contains("interpolation"), "{e}");
        std::fs::write(dir.path().join("ini.fact"), "k=v\n").unwrap();
        let v = local_facts(dir.path()).unwrap();
        assert!(v
            .get_attr("ini")
            .unwrap()
            .as_str()
            .unwrap()
            .starts_with("error loading facts as JSON or ini"));
    }

    #[test]
    fn ini_as_configparser_reads_it() {
        let s = parse_ini(
            "# c\n[DEFAULT]\nshared = yes\n[General]\nName = app\nmulti: a\n  b\n; x\n[other]\nk=\n",
        )
        .unwrap();
        assert_eq!(s["General"]["name"], "app");
        assert_eq!(s["General"]["multi"], "a\nb");
        assert_eq!(s["General"]["shared"], "yes");
        assert_eq!(s["other"]["k"], "");
        assert!(!s.contains_key("DEFAULT"));
        assert_eq!(parse_ini("[a]\nk=1\nk=2\n"), Err(IniError::Invalid));
        assert_eq!(parse_ini("[a]\nnovalue\n"), Err(IniError::Invalid));
    }
}
