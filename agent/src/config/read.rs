//! Reading the YAML tree of a configuration file against the schema: each value is checked as
//! its key's [`Kind`] and remembered with its line; unknown keys get a "did you mean".

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use gitops_modules::error::{LoadError, Location};
use gitops_modules::playbook::RawVars;
use gitops_modules::yaml::{Entry, Node, NodeKind};

use super::keys::{self, Key, Kind};
use super::value::{self, Value};
use super::{
    check_playbook, BranchTemplate, DriftPolicy, Duration, RebootPolicy, RepoUrl, DURATION_SYNTAX,
};

/// Reads one file's tree; collects every error rather than stopping at the first.
pub(super) struct Reader {
    pub file: Arc<str>,
    /// What relative paths are resolved against: the file's directory.
    pub base: PathBuf,
    pub errors: Vec<LoadError>,
    /// The values read, in the file's order.
    pub values: Vec<(&'static Key, Value)>,
    /// The line of every key given a value (sections too: `status`).
    pub lines: BTreeMap<String, u32>,
}

impl Reader {
    pub fn new(file: Arc<str>, base: PathBuf) -> Reader {
        Reader {
            file,
            base,
            errors: Vec::new(),
            values: Vec::new(),
            lines: BTreeMap::new(),
        }
    }

    /// Reads the whole document.
    pub fn read(&mut self, root: &Node) {
        for e in self.mapping(root, "", &keys::names_in("")) {
            let name = e.key.as_str();
            if let Some(key) = keys::find(name) {
                self.value(key, &e.value);
                continue;
            }
            for sub in self.mapping(&e.value, name, &keys::names_in(name)) {
                if let Some(key) = keys::find(&format!("{name}.{}", sub.key)) {
                    self.value(key, &sub.value);
                }
            }
        }
    }

    fn value(&mut self, key: &'static Key, node: &Node) {
        if let Some(v) = self.parse(key, node) {
            self.values.push((key, v));
        }
    }

    /// `node` as a value of `key`'s kind; `None` when it is null (the default stays) or wrong
    /// (an error is recorded).
    fn parse(&mut self, key: &Key, node: &Node) -> Option<Value> {
        let k = key.name;
        match key.kind {
            Kind::Repo => {
                let s = self.string(k, node)?;
                let r = RepoUrl::parse(s, &self.base);
                self.checked(k, node, r).map(Value::Repo)
            }
            Kind::Branch => {
                let s = self.string(k, node)?;
                self.checked(k, node, BranchTemplate::new(s))
                    .map(Value::Branch)
            }
            Kind::Playbook => {
                let s = self.string(k, node)?;
                let r = check_playbook(s).map(|()| s.to_string());
                self.checked(k, node, r).map(Value::Text)
            }
            Kind::Vars => self.extra_vars(k, node).map(Value::Vars),
            Kind::Duration => self.duration(k, node).map(Value::Duration),
            Kind::Drift => self.drift(k, node).map(Value::Drift),
            Kind::Reboot => {
                let s = self.string(k, node)?;
                let r = RebootPolicy::parse(s);
                self.checked(k, node, r).map(Value::Reboot)
            }
            Kind::Path => self.path(k, node).map(Value::Path),
            Kind::Paths => self.paths(k, node).map(Value::Paths),
            Kind::Bool => self.bool(k, node).map(Value::Bool),
            Kind::Bridge => self.bridge(k, node).map(Value::Bridge),
            Kind::Names => self.names(k, node).map(Value::Names),
        }
    }

    fn error(&mut self, line: u32, key: &str, message: impl Into<String>) {
        self.errors
            .push(LoadError::at(Location::new(self.file.clone(), line), message).with_key(key));
    }

    fn wrong_type(&mut self, key: &str, node: &Node, expected: &str) {
        let found = node.type_name();
        self.error(
            node.line,
            key,
            format!("expected {expected}, found {found}"),
        );
    }

    /// The known entries of a mapping (null = empty); unknown keys are reported.
    fn mapping<'n>(&mut self, node: &'n Node, section: &str, known: &[&str]) -> Vec<&'n Entry> {
        let entries = match &node.kind {
            NodeKind::Null => return Vec::new(),
            NodeKind::Map(entries) => entries,
            _ if section.is_empty() => {
                let found = node.type_name();
                self.errors.push(LoadError::at(
                    Location::new(self.file.clone(), node.line),
                    format!("the configuration must be a mapping of keys to values, found {found}"),
                ));
                return Vec::new();
            }
            _ => {
                self.wrong_type(section, node, "a mapping");
                return Vec::new();
            }
        };
        let mut out = Vec::new();
        for e in entries {
            let dotted = qualify(section, &e.key);
            if known.contains(&e.key.as_str()) {
                if !e.value.is_null() {
                    self.lines.insert(dotted, e.key_line);
                }
                out.push(e);
            } else {
                let message = unknown_key_message(section, &e.key);
                self.error(e.key_line, &dotted, message);
            }
        }
        out
    }

    fn string<'n>(&mut self, key: &str, node: &'n Node) -> Option<&'n str> {
        match &node.kind {
            NodeKind::Null => None,
            NodeKind::Str(s) => Some(s),
            _ => {
                self.wrong_type(key, node, "a string");
                None
            }
        }
    }

    /// `r`'s value, or `None` with its error recorded at `node`'s line.
    fn checked<T, E: std::fmt::Display>(
        &mut self,
        key: &str,
        node: &Node,
        r: Result<T, E>,
    ) -> Option<T> {
        r.map_err(|e| self.error(node.line, key, e.to_string()))
            .ok()
    }

    fn path(&mut self, key: &str, node: &Node) -> Option<PathBuf> {
        let s = self.string(key, node)?;
        let r = value::path(s, &self.base);
        self.checked(key, node, r)
    }

    fn paths(&mut self, key: &str, node: &Node) -> Option<Vec<PathBuf>> {
        match &node.kind {
            NodeKind::Null => None,
            NodeKind::Seq(items) => {
                let n = self.errors.len();
                let out: Vec<PathBuf> = items
                    .iter()
                    .filter_map(|item| {
                        if item.is_null() {
                            self.wrong_type(key, item, "a path");
                            None
                        } else {
                            self.path(key, item)
                        }
                    })
                    .collect();
                (self.errors.len() == n).then_some(out)
            }
            _ => {
                self.wrong_type(key, node, "a list of paths");
                None
            }
        }
    }

    fn bool(&mut self, key: &str, node: &Node) -> Option<bool> {
        match &node.kind {
            NodeKind::Null => None,
            NodeKind::Bool(b) => Some(*b),
            _ => {
                self.wrong_type(key, node, "true or false");
                None
            }
        }
    }

    fn bridge(&mut self, key: &str, node: &Node) -> Option<bool> {
        // YAML 1.1 reads a bare `off` as false.
        if let NodeKind::Bool(false) = node.kind {
            return Some(false);
        }
        let s = self.string(key, node)?;
        let r = value::parse_bridge(s);
        self.checked(key, node, r)
    }

    fn names(&mut self, key: &str, node: &Node) -> Option<Vec<String>> {
        match &node.kind {
            NodeKind::Null => None,
            NodeKind::Seq(items) => {
                let n = self.errors.len();
                let out: Vec<String> = items
                    .iter()
                    .filter_map(|item| {
                        let s = self.string(key, item)?;
                        let r = value::module_name(s);
                        self.checked(key, item, r)
                    })
                    .collect();
                (self.errors.len() == n).then_some(out)
            }
            _ => {
                self.wrong_type(key, node, "a list of module names");
                None
            }
        }
    }

    fn drift(&mut self, key: &str, node: &Node) -> Option<DriftPolicy> {
        // YAML 1.1 reads a bare `off` as false.
        if let NodeKind::Bool(false) = node.kind {
            return Some(DriftPolicy::Off);
        }
        let s = self.string(key, node)?;
        let r = DriftPolicy::parse(s);
        self.checked(key, node, r)
    }

    fn duration(&mut self, key: &str, node: &Node) -> Option<Duration> {
        match &node.kind {
            NodeKind::Null => None,
            NodeKind::Int(i) if *i >= 0 => Some(Duration::from_secs(*i as u64)),
            NodeKind::Str(s) => {
                let r = s.parse::<Duration>();
                self.checked(key, node, r)
            }
            NodeKind::Int(i) => {
                self.error(node.line, key, format!("negative duration {i}"));
                None
            }
            _ => {
                self.wrong_type(key, node, DURATION_SYNTAX);
                None
            }
        }
    }

    fn extra_vars(&mut self, key: &str, node: &Node) -> Option<RawVars> {
        let entries = match &node.kind {
            NodeKind::Null => return None,
            NodeKind::Map(entries) => entries,
            _ => {
                self.wrong_type(key, node, "a mapping of variable names to values");
                return None;
            }
        };
        let mut out = RawVars::new();
        for e in entries {
            if !is_identifier(&e.key) {
                let k = format!("{key}.{}", e.key);
                self.error(
                    e.key_line,
                    &k,
                    format!("`{}` is not a valid variable name", e.key),
                );
                continue;
            }
            out.insert(e.key.clone(), e.value.to_value());
        }
        Some(out)
    }
}

/// Where relative paths of the file `name` are resolved: its directory, made absolute.
pub(super) fn base_of(name: &str) -> PathBuf {
    let parent = Path::new(name).parent().unwrap_or(Path::new(""));
    super::repo::absolute(&super::repo::current_dir(), parent)
}

fn qualify(section: &str, key: &str) -> String {
    if section.is_empty() {
        key.to_string()
    } else {
        format!("{section}.{key}")
    }
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// "unknown key", with the closest known key (in this section first, else anywhere).
pub(super) fn unknown_key_message(section: &str, key: &str) -> String {
    const SECRETS: [&str; 8] = [
        "password",
        "passwd",
        "username",
        "user",
        "token",
        "credentials",
        "secret",
        "private_key",
    ];
    if SECRETS.contains(&key.to_ascii_lowercase().as_str()) {
        return "unknown key: credentials are never written in the configuration; put them in \
                the file named by `http.credentials_file`"
            .to_string();
    }
    let mut best: Option<(usize, bool, String)> = None;
    for dotted in keys::all_names() {
        let (sec, name) = dotted.rsplit_once('.').unwrap_or(("", dotted));
        let d = strsim::levenshtein(key, name);
        let limit = (name.len().max(key.len()) / 3).max(1);
        if d > limit {
            continue;
        }
        let other_section = sec != section;
        let better = match &best {
            None => true,
            Some((bd, bo, _)) => (d, other_section) < (*bd, *bo),
        };
        if better {
            let shown = if other_section {
                format!("`{dotted}`")
            } else {
                format!("`{name}`")
            };
            best = Some((d, other_section, shown));
        }
    }
    match best {
        Some((_, _, shown)) => format!("unknown key (did you mean {shown}?)"),
        None => format!(
            "unknown key (known: {})",
            keys::names_in(section).join(", ")
        ),
    }
}
