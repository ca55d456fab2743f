//! Module arguments: each module declares an [`ArgSpec`] (as Ansible's `argument_spec`), which is
//! checked twice — statically on the YAML before anything runs (unknown keys, literal values of
//! the wrong type, bad choices), and again on the rendered values at run time, producing [`Args`].

use indexmap::IndexMap;
use minijinja::Value;

use crate::error::{LoadError, Location};
use crate::template::Templar;
use crate::yaml::{Node, NodeKind};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArgType {
    /// Text; numbers and booleans given here are turned into text, as Ansible does.
    Str,
    /// A host path (text).
    Path,
    /// Ansible's boolean: yes/no, true/false, on/off, 1/0, y/n, t/f.
    Bool,
    Int,
    /// A list; a comma-separated string is split, as Ansible does for `type: list`.
    List,
    Dict,
    /// A file mode: octal number, octal text, symbolic text (`u=rw,g=r`) or `preserve`.
    Mode,
    /// Anything, passed through as is.
    Raw,
}

impl ArgType {
    fn describe(self) -> &'static str {
        match self {
            ArgType::Str => "a string",
            ArgType::Path => "a path",
            ArgType::Bool => "a boolean",
            ArgType::Int => "an integer",
            ArgType::List => "a list",
            ArgType::Dict => "a mapping",
            ArgType::Mode => "a file mode",
            ArgType::Raw => "a value",
        }
    }
}

/// One argument of a module.
#[derive(Debug, Clone, Copy)]
pub struct ArgDef {
    pub name: &'static str,
    pub ty: ArgType,
    pub aliases: &'static [&'static str],
    pub choices: &'static [&'static str],
    pub required: bool,
}

impl ArgDef {
    pub const fn new(name: &'static str, ty: ArgType) -> ArgDef {
        ArgDef {
            name,
            ty,
            aliases: &[],
            choices: &[],
            required: false,
        }
    }
    pub const fn aliases(mut self, aliases: &'static [&'static str]) -> ArgDef {
        self.aliases = aliases;
        self
    }
    pub const fn choices(mut self, choices: &'static [&'static str]) -> ArgDef {
        self.choices = choices;
        self
    }
    pub const fn required(mut self) -> ArgDef {
        self.required = true;
        self
    }
}

/// The arguments a module accepts.
#[derive(Debug)]
pub struct ArgSpec {
    pub module: &'static str,
    pub args: &'static [ArgDef],
    /// Free-form text (`command: ls -l`) is accepted and stored under `_raw_params`.
    pub free_form: bool,
    /// Groups of arguments of which at most one may be given.
    pub mutually_exclusive: &'static [&'static [&'static str]],
    /// Groups of arguments of which at least one must be given.
    pub required_one_of: &'static [&'static [&'static str]],
}

/// Why a module's arguments were refused (at load time on literal values, at run time on
/// rendered ones).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArgError {
    #[error("unsupported argument `{key}` for module `{module}` (supported: {supported})")]
    Unknown {
        key: String,
        module: &'static str,
        /// The accepted names, sorted, comma-separated.
        supported: String,
    },
    #[error("argument `{name}`: {problem}")]
    Invalid {
        name: &'static str,
        problem: ValueError,
    },
    #[error("arguments are mutually exclusive: {}", .0.join(", "))]
    MutuallyExclusive(Vec<&'static str>),
    #[error("module `{module}` needs one of: {}", .group.join(", "))]
    NeedsOneOf {
        module: &'static str,
        group: &'static [&'static str],
    },
    #[error("module `{module}` requires the argument `{name}`")]
    Required {
        module: &'static str,
        name: &'static str,
    },
}

/// Why one argument's value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    #[error("expected {expected}, got {got}")]
    WrongType { expected: &'static str, got: String },
    #[error("value `{value}` is not one of: {}", .choices.join(", "))]
    NotAChoice {
        value: String,
        choices: &'static [&'static str],
    },
    /// A user or group id out of range (`uid`, `gid`).
    #[error("{value} is not a valid {what}")]
    NotAnId { value: i64, what: &'static str },
    /// A template value whose Jinja does not parse.
    #[error("{0}")]
    Template(String),
}

/// Why `k=v` argument text could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KvError {
    #[error("unbalanced quotes in `{0}`")]
    UnbalancedQuotes(String),
    #[error("cannot parse `{0}`: expected key=value arguments")]
    NotKeyValue(String),
}

/// The key free-form text is stored under, as in Ansible.
pub const RAW_PARAMS: &str = "_raw_params";

impl ArgSpec {
    pub fn find(&self, key: &str) -> Option<&ArgDef> {
        self.args
            .iter()
            .find(|d| d.name == key || d.aliases.contains(&key))
    }

    fn unknown_key(&self, key: &str) -> ArgError {
        let mut names: Vec<&str> = self.args.iter().map(|d| d.name).collect();
        names.sort_unstable();
        ArgError::Unknown {
            key: key.to_string(),
            module: self.module,
            supported: names.join(", "),
        }
    }

    /// Static check of the task's argument mapping before anything runs. Values that are
    /// templates are only checked for Jinja syntax; their type is checked after rendering.
    pub fn validate(
        &self,
        args: &[(String, Node)],
        file: &std::sync::Arc<str>,
        templar: &Templar,
    ) -> Result<(), LoadError> {
        let mut seen: Vec<&'static str> = Vec::new();
        // Arguments that are not templates: only these are surely given (a template may
        // render to `omit`, as in `src: "{{ item.src | d(omit) }}"` beside `content:`).
        let mut literal: Vec<&'static str> = Vec::new();
        for (key, node) in args {
            let at = Location::new(file.clone(), node.line);
            if key == RAW_PARAMS {
                if !self.free_form {
                    return Err(LoadError::at(
                        at,
                        format!("module `{}` takes no free-form arguments", self.module),
                    ));
                }
                continue;
            }
            let Some(def) = self.find(key) else {
                return Err(
                    LoadError::at(at, self.unknown_key(key).to_string()).with_key(key.clone())
                );
            };
            if seen.contains(&def.name) {
                return Err(LoadError::at(
                    at,
                    format!("argument `{}` given twice (through an alias)", def.name),
                )
                .with_key(key.clone()));
            }
            seen.push(def.name);
            if !matches!(&node.kind, NodeKind::Str(s) if Templar::is_template(s)) {
                literal.push(def.name);
            }
            check_node(def, node, templar)
                .map_err(|m| LoadError::at(at.clone(), m.to_string()).with_key(key.clone()))?;
        }
        Ok(())
    }

    /// Static check of which arguments are given together: required ones, `required_one_of`,
    /// `mutually_exclusive` (after [`ArgSpec::validate`] accepted each argument), refused at
    /// load as bad input (a group holding an argument with a default, as Ansible counts it,
    /// lists that argument so that it never fails).
    pub fn validate_groups(
        &self,
        args: &[(String, Node)],
        file: &std::sync::Arc<str>,
    ) -> Result<(), LoadError> {
        let mut seen: Vec<&'static str> = Vec::new();
        let mut literal: Vec<&'static str> = Vec::new();
        for (key, node) in args {
            let Some(def) = self.find(key) else { continue };
            seen.push(def.name);
            if !matches!(&node.kind, NodeKind::Str(s) if Templar::is_template(s)) {
                literal.push(def.name);
            }
        }
        let line = args.first().map(|(_, n)| n.line).unwrap_or(0);
        self.check_groups(&seen, &literal)
            .and_then(|()| self.check_required(&seen))
            .map_err(|e| LoadError::at(Location::new(file.clone(), line), e.to_string()))
    }

    /// `seen`: the arguments given (or that may be); `surely`: those that cannot be omitted.
    fn check_groups(&self, seen: &[&str], surely: &[&str]) -> Result<(), ArgError> {
        for group in self.mutually_exclusive {
            let given: Vec<&'static str> = group
                .iter()
                .copied()
                .filter(|g| surely.contains(g))
                .collect();
            if given.len() > 1 {
                return Err(ArgError::MutuallyExclusive(given));
            }
        }
        for group in self.required_one_of {
            if !group.iter().any(|g| seen.contains(g)) {
                return Err(ArgError::NeedsOneOf {
                    module: self.module,
                    group,
                });
            }
        }
        Ok(())
    }

    fn check_required(&self, seen: &[&str]) -> Result<(), ArgError> {
        match self
            .args
            .iter()
            .find(|d| d.required && !seen.contains(&d.name))
        {
            Some(def) => Err(ArgError::Required {
                module: self.module,
                name: def.name,
            }),
            None => Ok(()),
        }
    }

    /// Run-time check of rendered arguments: aliases resolved, values coerced to their type.
    /// Arguments whose value is Ansible's `omit` placeholder are dropped first.
    pub fn bind(&self, rendered: &IndexMap<String, Value>) -> Result<Args, ArgError> {
        let mut values = IndexMap::new();
        for (key, value) in rendered {
            if value.as_str() == Some(crate::template::OMIT) {
                continue;
            }
            if key == RAW_PARAMS {
                values.insert(RAW_PARAMS, value.clone());
                continue;
            }
            let def = self.find(key).ok_or_else(|| self.unknown_key(key))?;
            let coerced = coerce(def, value).map_err(|problem| ArgError::Invalid {
                name: def.name,
                problem,
            })?;
            values.insert(def.name, coerced);
        }
        let seen: Vec<&str> = values.keys().copied().collect();
        self.check_groups(&seen, &seen)?;
        self.check_required(&seen)?;
        Ok(Args { values })
    }
}

fn check_node(def: &ArgDef, node: &Node, templar: &Templar) -> Result<(), ValueError> {
    if let NodeKind::Str(s) = &node.kind {
        if Templar::is_template(s) {
            return templar
                .check_syntax(s)
                .map_err(|e| ValueError::Template(e.to_string()));
        }
    }
    if def.ty == ArgType::Raw || node.is_null() {
        return Ok(());
    }
    coerce(def, &node.to_value()).map(|_| ())
}

/// Ansible's boolean conversion.
pub fn to_bool(value: &Value) -> Option<bool> {
    if let Some(s) = value.as_str() {
        return match s.trim().to_ascii_lowercase().as_str() {
            "y" | "yes" | "on" | "1" | "true" | "t" => Some(true),
            "n" | "no" | "off" | "0" | "false" | "f" => Some(false),
            _ => None,
        };
    }
    match value.kind() {
        minijinja::value::ValueKind::Bool => Some(value.is_true()),
        minijinja::value::ValueKind::Number => {
            let n = i64::try_from(value.clone()).ok()?;
            match n {
                0 => Some(false),
                1 => Some(true),
                _ => None,
            }
        }
        _ => None,
    }
}

fn coerce(def: &ArgDef, value: &Value) -> Result<Value, ValueError> {
    use minijinja::value::ValueKind as K;
    let kind = value.kind();
    let wrong = || ValueError::WrongType {
        expected: def.ty.describe(),
        got: match kind {
            K::Seq => "a list".to_string(),
            K::Map => "a mapping".to_string(),
            _ => format!("`{value}`"),
        },
    };
    let out = match def.ty {
        ArgType::Raw => value.clone(),
        ArgType::Str | ArgType::Path => match kind {
            K::String => value.clone(),
            K::Number | K::Bool => Value::from(python_str(value)),
            K::None | K::Undefined => Value::from(()),
            _ => return Err(wrong()),
        },
        ArgType::Bool => match kind {
            K::None | K::Undefined => Value::from(()),
            _ => Value::from(to_bool(value).ok_or_else(wrong)?),
        },
        ArgType::Int => match kind {
            K::Number => Value::from(i64::try_from(value.clone()).map_err(|_| wrong())?),
            K::String => Value::from(
                value
                    .as_str()
                    .unwrap_or("")
                    .trim()
                    .parse::<i64>()
                    .map_err(|_| wrong())?,
            ),
            K::None | K::Undefined => Value::from(()),
            _ => return Err(wrong()),
        },
        ArgType::List => match kind {
            K::Seq => value.clone(),
            K::String => Value::from(
                value
                    .as_str()
                    .unwrap_or("")
                    .split(',')
                    .map(|s| Value::from(s.trim()))
                    .collect::<Vec<_>>(),
            ),
            K::Number | K::Bool => Value::from(vec![Value::from(python_str(value))]),
            K::None | K::Undefined => Value::from(()),
            _ => return Err(wrong()),
        },
        ArgType::Dict => match kind {
            K::Map => value.clone(),
            K::None | K::Undefined => Value::from(()),
            _ => return Err(wrong()),
        },
        ArgType::Mode => match kind {
            K::Number | K::String => value.clone(),
            K::None | K::Undefined => Value::from(()),
            _ => return Err(wrong()),
        },
    };
    if !def.choices.is_empty() && !out.is_none() {
        // For a list, as Ansible's `elements` + `choices`: every element is one of them.
        let items: Vec<Value> = match def.ty {
            ArgType::List => out.try_iter().map(|i| i.collect()).unwrap_or_default(),
            _ => vec![out.clone()],
        };
        for item in &items {
            let text = python_str(item);
            if !def.choices.contains(&text.as_str()) {
                return Err(ValueError::NotAChoice {
                    value: text,
                    choices: def.choices,
                });
            }
        }
    }
    Ok(out)
}

/// How Python's `str()` shows a scalar (booleans as `True`/`False`).
pub fn python_str(value: &Value) -> String {
    match value.kind() {
        minijinja::value::ValueKind::Bool => {
            if value.is_true() {
                "True".into()
            } else {
                "False".into()
            }
        }
        minijinja::value::ValueKind::None | minijinja::value::ValueKind::Undefined => "None".into(),
        _ => value.to_string(),
    }
}

/// A module's arguments after rendering and coercion, keyed by canonical name.
#[derive(Debug, Clone, Default)]
pub struct Args {
    values: IndexMap<&'static str, Value>,
}

impl Args {
    /// The value, `None` when absent or null.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.values.get(name).filter(|v| !v.is_none())
    }
    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }
    pub fn str(&self, name: &str) -> Option<String> {
        self.get(name).map(python_str)
    }
    pub fn bool(&self, name: &str) -> Option<bool> {
        self.get(name).map(|v| v.is_true())
    }
    pub fn bool_or(&self, name: &str, default: bool) -> bool {
        self.bool(name).unwrap_or(default)
    }
    pub fn int(&self, name: &str) -> Option<i64> {
        self.get(name).and_then(|v| i64::try_from(v.clone()).ok())
    }
    /// A user or group id argument (`uid`, `gid`), refused out of range.
    pub fn id(&self, name: &'static str) -> Result<Option<u32>, ArgError> {
        match self.int(name) {
            None => Ok(None),
            Some(n) => u32::try_from(n).map(Some).map_err(|_| ArgError::Invalid {
                name,
                problem: ValueError::NotAnId {
                    value: n,
                    what: name,
                },
            }),
        }
    }
    /// A list argument as strings.
    pub fn list_str(&self, name: &str) -> Option<Vec<String>> {
        let v = self.get(name)?;
        Some(
            v.try_iter()
                .map(|it| it.map(|x| python_str(&x)).collect())
                .unwrap_or_default(),
        )
    }
    /// The free-form text of `command: ls -l`.
    pub fn raw_params(&self) -> Option<String> {
        self.values.get(RAW_PARAMS).map(python_str)
    }
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &Value)> {
        self.values.iter().map(|(k, v)| (*k, v))
    }
}

/// Parses Ansible's `k=v` argument text (`dest=/x mode=0644 content="a b"`). Words that are not
/// `k=v` are joined into `_raw_params` (for free-form modules). Quoting as Ansible's
/// `parse_kv`: single or double quotes group, backslash escapes inside double quotes.
pub fn parse_kv(text: &str, free_form: bool) -> Result<Vec<(String, String)>, KvError> {
    let mut out = Vec::new();
    let mut raw: Vec<String> = Vec::new();
    for token in split_args(text)? {
        let unquoted_eq = find_unquoted_eq(&token);
        match unquoted_eq {
            Some(i) if is_key(&token[..i]) => {
                let key = token[..i].to_string();
                let value = decode_escapes(&unquote(&token[i + 1..]));
                if free_form && !FREE_FORM_KEYS.contains(&key.as_str()) {
                    raw.push(token);
                } else {
                    out.push((key, value));
                }
            }
            _ => raw.push(token),
        }
    }
    if !raw.is_empty() {
        if !free_form {
            return Err(KvError::NotKeyValue(raw.join(" ")));
        }
        out.push((RAW_PARAMS.to_string(), raw.join(" ")));
    }
    Ok(out)
}

/// Keys that Ansible recognizes inside free-form `command`/`shell` text.
const FREE_FORM_KEYS: &[&str] = &[
    "creates",
    "removes",
    "chdir",
    "executable",
    "stdin",
    "stdin_add_newline",
    "strip_empty_ends",
];

/// Python's escape sequences in `k=v` values, as Ansible's `parse_kv` decodes them.
fn decode_escapes(s: &str) -> String {
    if !s.contains('\\') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let simple = match chars.peek() {
            Some('n') => Some('\n'),
            Some('t') => Some('\t'),
            Some('r') => Some('\r'),
            Some('\\') => Some('\\'),
            Some('\'') => Some('\''),
            Some('"') => Some('"'),
            Some('a') => Some('\u{7}'),
            Some('b') => Some('\u{8}'),
            Some('f') => Some('\u{c}'),
            Some('v') => Some('\u{b}'),
            _ => None,
        };
        if let Some(r) = simple {
            chars.next();
            out.push(r);
            continue;
        }
        let width = match chars.peek() {
            Some('x') => 2,
            Some('u') => 4,
            Some('U') => 8,
            _ => 0,
        };
        if width > 0 {
            let rest: String = chars.clone().skip(1).take(width).collect();
            if rest.len() == width {
                if let Some(ch) = u32::from_str_radix(&rest, 16).ok().and_then(char::from_u32) {
                    for _ in 0..=width {
                        chars.next();
                    }
                    out.push(ch);
                    continue;
                }
            }
        }
        out.push(c);
    }
    out
}

fn is_key(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn find_unquoted_eq(token: &str) -> Option<usize> {
    let mut quote = None;
    for (i, c) in token.char_indices() {
        match (quote, c) {
            (None, '\'' | '"') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '=') => return Some(i),
            _ => {}
        }
    }
    None
}

fn unquote(s: &str) -> String {
    let b = s.as_bytes();
    if b.len() >= 2 && (b[0] == b'"' || b[0] == b'\'') && b[b.len() - 1] == b[0] {
        let inner = &s[1..s.len() - 1];
        if b[0] == b'"' {
            return inner.replace("\\\"", "\"");
        }
        return inner.to_string();
    }
    s.to_string()
}

/// Splits on whitespace outside quotes and outside `{{ }}`/`{% %}` (as Ansible's split_args).
fn split_args(text: &str) -> Result<Vec<String>, KvError> {
    let mut tokens = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut depth = 0usize;
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if quote.is_none() && c == '{' && matches!(next, Some('{') | Some('%') | Some('#')) {
            depth += 1;
            cur.push(c);
            cur.push(next.unwrap_or('{'));
            i += 2;
            continue;
        }
        if quote.is_none() && depth > 0 && matches!(c, '}' | '%' | '#') && next == Some('}') {
            depth -= 1;
            cur.push(c);
            cur.push('}');
            i += 2;
            continue;
        }
        match quote {
            Some(q) if c == '\\' && q == '"' && next.is_some() => {
                cur.push(c);
                cur.push(next.unwrap_or_default());
                i += 2;
                continue;
            }
            Some(q) if c == q => quote = None,
            None if (c == '"' || c == '\'') && depth == 0 => quote = Some(c),
            None if c.is_whitespace() && depth == 0 => {
                if !cur.is_empty() {
                    tokens.push(std::mem::take(&mut cur));
                }
                i += 1;
                continue;
            }
            _ => {}
        }
        cur.push(c);
        i += 1;
    }
    if quote.is_some() {
        return Err(KvError::UnbalancedQuotes(text.to_string()));
    }
    if !cur.is_empty() {
        tokens.push(cur);
    }
    Ok(tokens)
}

#[cfg(test)]
mod tests {
    use super::*;

    static SPEC: ArgSpec = ArgSpec {
        module: "demo",
        args: &[
            ArgDef::new("dest", ArgType::Path)
                .aliases(&["path"])
                .required(),
            ArgDef::new("force", ArgType::Bool),
            ArgDef::new("state", ArgType::Str).choices(&["file", "absent"]),
            ArgDef::new("mode", ArgType::Mode),
            ArgDef::new("groups", ArgType::List),
        ],
        free_form: false,
        mutually_exclusive: &[],
        required_one_of: &[],
    };

    fn rendered(pairs: &[(&str, Value)]) -> IndexMap<String, Value> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    #[test]
    fn bind_coerces_and_resolves_aliases() {
        let args = SPEC
            .bind(&rendered(&[
                ("path", Value::from("/tmp/x")),
                ("force", Value::from("yes")),
                ("groups", Value::from("a, b")),
                ("mode", Value::from(0o644)),
            ]))
            .unwrap();
        assert_eq!(args.str("dest").as_deref(), Some("/tmp/x"));
        assert_eq!(args.bool("force"), Some(true));
        assert_eq!(args.list_str("groups").unwrap(), vec!["a", "b"]);
        assert_eq!(args.int("mode"), Some(0o644));
    }

    #[test]
    fn exclusive_arguments_that_may_be_omitted_are_checked_when_rendered() {
        static EXCL: ArgSpec = ArgSpec {
            module: "demo",
            args: &[
                ArgDef::new("src", ArgType::Str),
                ArgDef::new("content", ArgType::Str),
            ],
            free_form: false,
            mutually_exclusive: &[&["src", "content"]],
            required_one_of: &[],
        };
        let templar = Templar::new();
        let file: std::sync::Arc<str> = std::sync::Arc::from("t.yml");
        let node = |s: &str| Node::new(NodeKind::Str(s.to_string()), 1);
        let maybe = [
            ("src".to_string(), node("{{ item.src | d(omit) }}")),
            ("content".to_string(), node("{{ item.content | d(omit) }}")),
        ];
        assert!(EXCL.validate(&maybe, &file, &templar).is_ok());
        assert!(EXCL.validate_groups(&maybe, &file).is_ok());
        let both = [
            ("src".to_string(), node("a")),
            ("content".to_string(), node("b")),
        ];
        assert!(EXCL.validate(&both, &file, &templar).is_ok());
        let e = EXCL.validate_groups(&both, &file).unwrap_err();
        assert!(e.to_string().contains("mutually exclusive"), "{e}");
        let e = EXCL
            .bind(&rendered(&[
                ("src", Value::from("a")),
                ("content", Value::from("b")),
            ]))
            .unwrap_err();
        assert!(e.to_string().contains("mutually exclusive"), "{e}");
    }

    #[test]
    fn bind_refuses_bad_values() {
        let e = SPEC
            .bind(&rendered(&[
                ("dest", Value::from("/x")),
                ("force", Value::from("maybe")),
            ]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("force"), "{e}");
        let e = SPEC
            .bind(&rendered(&[
                ("dest", Value::from("/x")),
                ("state", Value::from("dir")),
            ]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("not one of"), "{e}");
        let e = SPEC
            .bind(&rendered(&[("bogus", Value::from(1))]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("unsupported argument `bogus`"), "{e}");
        let e = SPEC.bind(&rendered(&[])).unwrap_err().to_string();
        assert!(e.contains("requires the argument `dest`"), "{e}");
    }

    #[test]
    fn ids_in_range() {
        static IDS: ArgSpec = ArgSpec {
            module: "t",
            args: &[ArgDef::new("uid", ArgType::Int)],
            free_form: false,
            mutually_exclusive: &[],
            required_one_of: &[],
        };
        let bind = |v: i64| IDS.bind(&rendered(&[("uid", Value::from(v))])).unwrap();
        assert_eq!(bind(1001).id("uid"), Ok(Some(1001)));
        assert_eq!(
            bind(-1).id("uid").unwrap_err().to_string(),
            "argument `uid`: -1 is not a valid uid"
        );
        assert_eq!(IDS.bind(&rendered(&[])).unwrap().id("uid"), Ok(None));
    }

    #[test]
    fn kv_text() {
        let kv = parse_kv("dest=/tmp/a content='hello world' mode=0644", false).unwrap();
        assert_eq!(
            kv,
            vec![
                ("dest".to_string(), "/tmp/a".to_string()),
                ("content".to_string(), "hello world".to_string()),
                ("mode".to_string(), "0644".to_string()),
            ]
        );
        let kv = parse_kv("echo {{ a }} b creates=/x chdir=/tmp", true).unwrap();
        assert_eq!(kv[0], ("creates".to_string(), "/x".to_string()));
        assert_eq!(kv[1], ("chdir".to_string(), "/tmp".to_string()));
        assert_eq!(
            kv[2],
            (RAW_PARAMS.to_string(), "echo {{ a }} b".to_string())
        );
        assert!(parse_kv("dest=/x oops", false).is_err());
        let kv = parse_kv(r#"content="a\nb\x41" dest=/x"#, false).unwrap();
        assert_eq!(kv[0].1, "a\nbA");
    }
}
