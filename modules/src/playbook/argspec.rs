//! A role's `argument_specs` (meta/argument_specs.yml or meta/main.yml): as ansible-core does,
//! the role's tasks start with a task that validates the role's variables against the spec of
//! its entry point (`main` or `tasks_from`). The spec constructs the agent does not check make
//! that task fail when it runs, never pass silently.

use std::sync::Arc;

use minijinja::value::ValueKind;
use minijinja::Value;

use super::*;
use crate::args::{python_str, to_bool};
use crate::error::{LoadError, Location};
use crate::yaml::Node;

/// What an option of a spec may say (documentation keys included).
const OPTION_KEYS: &[&str] = &[
    "type",
    "required",
    "default",
    "choices",
    "elements",
    "options",
    "description",
    "no_log",
    "version_added",
    "apply_defaults",
];

const TYPES: &[&str] = &["str", "int", "bool", "float", "list", "dict", "path", "raw"];

impl Loader<'_> {
    /// The validation task for the entry point `entry`, when the spec has one.
    pub(super) fn argument_spec_task(
        &mut self,
        specs: &Node,
        file: &Arc<str>,
        entry: &str,
        role: &Arc<Role>,
    ) -> Option<Arc<Task>> {
        let found = specs.as_map()?.iter().find(|e| e.key == entry)?;
        let spec = &found.value;
        let mut name = format!("Validating arguments against arg spec '{entry}'");
        if let Some(d) = spec.get("short_description").and_then(|n| n.as_str()) {
            name = format!("{name} - {d}");
        }
        let options = spec
            .get("options")
            .map(|n| n.to_value())
            .unwrap_or(Value::from(()));
        let location = Location::new(file.clone(), found.key_line);
        let action = match check_spec(&options, "") {
            Ok(()) => Action::ValidateArgs {
                options,
                params: role.params.clone(),
            },
            Err(what) => {
                let e = LoadError::at(
                    location.clone(),
                    format!("role argument_specs: {what} is not checked by the agent"),
                )
                .with_key("argument_specs");
                self.warnings.push(e.clone());
                Action::Unsupported {
                    written: "validate_argument_spec".into(),
                    error: e,
                    call: None,
                }
            }
        };
        Some(Arc::new(Task {
            name: Some(name),
            action,
            common: Common {
                tags: vec!["always".into()],
                ..Common::default()
            },
            loop_items: None,
            loop_var: "item".into(),
            index_var: None,
            label: None,
            notify: Vec::new(),
            listen: Vec::new(),
            register: None,
            changed_when: None,
            failed_when: None,
            until: None,
            retries: None,
            delay: None,
            role: Some(role.clone()),
            location,
        }))
    }
}

/// The first construct of `options` the validator does not implement.
fn check_spec(options: &Value, prefix: &str) -> Result<(), String> {
    if options.is_none() || options.is_undefined() {
        return Ok(());
    }
    if options.kind() != ValueKind::Map {
        return Err(format!("`{prefix}options` that is not a mapping"));
    }
    for name in options.try_iter().map_err(|e| e.to_string())? {
        let n = python_str(&name);
        let opt = options.get_item(&name).unwrap_or_default();
        if opt.kind() != ValueKind::Map {
            return Err(format!("option `{prefix}{n}` that is not a mapping"));
        }
        for k in opt.try_iter().map_err(|e| e.to_string())? {
            let k = python_str(&k);
            if !OPTION_KEYS.contains(&k.as_str()) {
                return Err(format!("`{k}` (option `{prefix}{n}`)"));
            }
        }
        for key in ["type", "elements"] {
            if let Ok(t) = opt.get_attr(key) {
                if !t.is_undefined() && !TYPES.contains(&python_str(&t).as_str()) {
                    return Err(format!("type `{}` (option `{prefix}{n}`)", python_str(&t)));
                }
            }
        }
        if let Ok(sub) = opt.get_attr("options") {
            check_spec(&sub, &format!("{prefix}{n}."))?;
        }
    }
    Ok(())
}

/// Validates `provided` (name → value) against `options`, as ansible-core's
/// ArgumentSpecValidator: unsupported names, missing required ones, types (with Ansible's
/// conversions), choices, list elements and nested options. The error messages, joined.
pub fn validate_arguments(options: &Value, provided: &[(String, Value)]) -> Result<(), String> {
    let mut errors = Vec::new();
    check_params(options, provided, "", &mut errors);
    if errors.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "Validation of arguments failed:\n{}",
            errors.join("\n")
        ))
    }
}

/// The option names of a spec's `options`.
pub fn option_names(options: &Value) -> Vec<String> {
    options
        .try_iter()
        .map(|it| it.map(|v| python_str(&v)).collect())
        .unwrap_or_default()
}

fn check_params(
    options: &Value,
    provided: &[(String, Value)],
    ctx: &str,
    errors: &mut Vec<String>,
) {
    let names = option_names(options);
    let unknown: Vec<&str> = provided
        .iter()
        .map(|(k, _)| k.as_str())
        .filter(|k| !names.iter().any(|n| n == k))
        .collect();
    if !unknown.is_empty() {
        let mut supported = names.clone();
        supported.sort();
        errors.push(format!(
            "Unsupported parameters for (None) module: {}{ctx}. Supported parameters include: {}.",
            unknown.join(", "),
            supported.join(", ")
        ));
    }
    let mut missing = Vec::new();
    for n in &names {
        let opt = options.get_attr(n).unwrap_or_default();
        let required = opt
            .get_attr("required")
            .ok()
            .and_then(|v| to_bool(&v))
            .unwrap_or(false);
        let given = provided.iter().find(|(k, _)| k == n).map(|(_, v)| v);
        match given {
            None if required => missing.push(n.clone()),
            None => {}
            Some(v) => check_value(n, &opt, v, ctx, errors),
        }
    }
    if !missing.is_empty() {
        errors.push(format!(
            "missing required arguments: {}{ctx}",
            missing.join(", ")
        ));
    }
}

fn attr(opt: &Value, key: &str) -> Option<Value> {
    opt.get_attr(key)
        .ok()
        .filter(|v| !v.is_undefined() && !v.is_none())
}

fn check_value(name: &str, opt: &Value, v: &Value, ctx: &str, errors: &mut Vec<String>) {
    let ty = attr(opt, "type")
        .map(|t| python_str(&t))
        .unwrap_or_else(|| "str".into());
    let converted = match convert(&ty, v) {
        Ok(c) => c,
        Err(why) => {
            errors.push(format!(
                "argument '{name}' is of type {} and we were unable to convert to {ty}: {why}{ctx}",
                type_name(v)
            ));
            return;
        }
    };
    if ty == "list" {
        if let Some(el) = attr(opt, "elements") {
            let el = python_str(&el);
            let items: Vec<Value> = converted
                .try_iter()
                .map(|i| i.collect())
                .unwrap_or_default();
            for (i, item) in items.iter().enumerate() {
                match convert(&el, item) {
                    Ok(c) if el == "dict" => {
                        if let Some(sub) = attr(opt, "options") {
                            check_params(
                                &sub,
                                &pairs(&c),
                                &format!(" found in {name}[{i}]"),
                                errors,
                            );
                        }
                    }
                    Ok(_) => {}
                    Err(why) => errors.push(format!(
                        "Elements value for option '{name}' is of type {} and we were unable to \
                         convert to {el}: {why}{ctx}",
                        type_name(item)
                    )),
                }
            }
        }
    }
    if ty == "dict" {
        if let Some(sub) = attr(opt, "options") {
            check_params(
                &sub,
                &pairs(&converted),
                &format!(" found in {name}"),
                errors,
            );
        }
    }
    if let Some(choices) = attr(opt, "choices") {
        let choices: Vec<Value> = choices.try_iter().map(|i| i.collect()).unwrap_or_default();
        let values: Vec<Value> = if ty == "list" {
            converted
                .try_iter()
                .map(|i| i.collect())
                .unwrap_or_default()
        } else {
            vec![converted.clone()]
        };
        let same = |a: &Value, b: &Value| a == b || python_str(a) == python_str(b);
        let bad: Vec<String> = values
            .iter()
            .filter(|v| !choices.iter().any(|c| same(c, v)))
            .map(python_str)
            .collect();
        if !bad.is_empty() {
            let listed: Vec<String> = choices.iter().map(python_str).collect();
            errors.push(format!(
                "value of {name} must be one of: {}, got: {}{ctx}",
                listed.join(", "),
                bad.join(", ")
            ));
        }
    }
}

fn pairs(v: &Value) -> Vec<(String, Value)> {
    v.try_iter()
        .map(|it| {
            it.map(|k| {
                let val = v.get_item(&k).unwrap_or_default();
                (python_str(&k), val)
            })
            .collect()
        })
        .unwrap_or_default()
}

fn type_name(v: &Value) -> &'static str {
    match v.kind() {
        ValueKind::String => "str",
        ValueKind::Number if v.is_integer() => "int",
        ValueKind::Number => "float",
        ValueKind::Bool => "bool",
        ValueKind::Seq => "list",
        ValueKind::Map => "dict",
        ValueKind::None | ValueKind::Undefined => "NoneType",
        _ => "object",
    }
}

/// Ansible's type checks and conversions (module_utils/common/validation.py).
fn convert(ty: &str, v: &Value) -> Result<Value, String> {
    let kind = v.kind();
    match ty {
        "raw" => Ok(v.clone()),
        "str" | "path" => Ok(match kind {
            ValueKind::None => Value::from(""),
            _ => Value::from(python_str(v)),
        }),
        "bool" => match kind {
            ValueKind::Bool => Ok(v.clone()),
            ValueKind::String | ValueKind::Number => to_bool(v)
                .map(Value::from)
                .ok_or_else(|| format!("The value '{}' is not a valid boolean.", python_str(v))),
            _ => Err(format!(
                "<class '{}'> cannot be converted to a bool",
                type_name(v)
            )),
        },
        "int" => match kind {
            ValueKind::Number if v.is_integer() => Ok(v.clone()),
            ValueKind::Number | ValueKind::String => {
                let s = python_str(v);
                let f: f64 = s
                    .trim()
                    .parse()
                    .map_err(|_| format!("\"'{s}'\" cannot be converted to an int"))?;
                if f.fract() != 0.0 {
                    return Err(format!("\"'{s}'\" cannot be converted to an int"));
                }
                Ok(Value::from(f as i64))
            }
            _ => Err(format!(
                "\"{}\" cannot be converted to an int",
                python_str(v)
            )),
        },
        "float" => match kind {
            ValueKind::Number => Ok(v.clone()),
            ValueKind::String => python_str(v)
                .trim()
                .parse::<f64>()
                .map(Value::from)
                .map_err(|_| format!("<class '{}'> cannot be converted to a float", type_name(v))),
            _ => Err(format!(
                "<class '{}'> cannot be converted to a float",
                type_name(v)
            )),
        },
        "list" => match kind {
            ValueKind::Seq => Ok(v.clone()),
            ValueKind::String => Ok(Value::from(
                python_str(v)
                    .split(',')
                    .map(|s| Value::from(s.to_string()))
                    .collect::<Vec<_>>(),
            )),
            ValueKind::Number => Ok(Value::from(vec![Value::from(python_str(v))])),
            _ => Err(format!(
                "<class '{}'> cannot be converted to a list",
                type_name(v)
            )),
        },
        "dict" => match kind {
            ValueKind::Map => Ok(v.clone()),
            // `k=v` and JSON text are accepted by Ansible; not converted here: refused loudly.
            _ => Err(format!(
                "dictionary requested, could not parse JSON or key=value ({})",
                type_name(v)
            )),
        },
        other => Err(format!("unknown type {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml: &str) -> Value {
        let node = crate::yaml::parse(&Arc::from("s.yml"), yaml).unwrap();
        node.to_value()
    }

    #[test]
    fn required_types_choices_and_nested_options() {
        let s = spec(
            "name: {type: str, required: true}\nport: {type: int}\nmode: {choices: [a, b]}\n\
             users: {type: list, elements: dict, options: {login: {required: true}}}\n",
        );
        let ok = validate_arguments(
            &s,
            &[
                ("name".into(), Value::from("x")),
                ("port".into(), Value::from("80")),
                ("mode".into(), Value::from("a")),
            ],
        );
        assert_eq!(ok, Ok(()));
        let e = validate_arguments(&s, &[("port".into(), Value::from("eighty"))]).unwrap_err();
        assert!(e.contains("missing required arguments: name"), "{e}");
        assert!(e.contains("argument 'port' is of type str"), "{e}");
        let e = validate_arguments(
            &s,
            &[
                ("name".into(), Value::from("x")),
                ("mode".into(), Value::from("c")),
                ("extra".into(), Value::from(1)),
            ],
        )
        .unwrap_err();
        assert!(
            e.contains("value of mode must be one of: a, b, got: c"),
            "{e}"
        );
        assert!(
            e.contains("Unsupported parameters for (None) module: extra"),
            "{e}"
        );
        let users = crate::vars::map_value([("nologin", Value::from(1))]);
        let e = validate_arguments(
            &s,
            &[
                ("name".into(), Value::from("x")),
                ("users".into(), Value::from(vec![users])),
            ],
        )
        .unwrap_err();
        assert!(
            e.contains("missing required arguments: login found in users[0]"),
            "{e}"
        );
    }

    #[test]
    fn unchecked_constructs_are_named() {
        assert!(check_spec(&spec("a: {type: str}\n"), "").is_ok());
        let e = check_spec(&spec("a: {type: str, aliases: [b]}\n"), "").unwrap_err();
        assert!(e.contains("aliases"), "{e}");
        let e = check_spec(&spec("a: {type: bits}\n"), "").unwrap_err();
        assert!(e.contains("bits"), "{e}");
    }
}
