//! Values given on the command line, checked as their key's type; [`super::Config::apply`] lays
//! them over the file.

use gitops_modules::playbook::RawVars;

use super::keys::{self, Key};
use super::repo::current_dir;
use super::value::{Value, ValueError};

/// A flag's value that cannot be used; the message names the flag.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OverrideError {
    #[error("unknown configuration key `{0}`")]
    UnknownKey(String),
    /// The value does not parse as the key's type.
    #[error("--{flag}: {source}")]
    Value {
        /// The long flag, without `--`.
        flag: &'static str,
        source: ValueError,
    },
}

/// Values given on the command line; each beats the file (a list replaces the file's list,
/// extra variables are merged key by key). There is deliberately no way to pass HTTP
/// credentials here: `http.credentials_file` names the file that holds them.
#[derive(Debug, Clone, Default)]
pub struct ConfigOverrides {
    values: Vec<(&'static Key, Value)>,
}

impl ConfigOverrides {
    /// Sets the key `name` (dotted) from a flag's text; relative paths are resolved against the
    /// current directory, and a list key adds `text` to its list. The error names the flag.
    pub fn set(&mut self, name: &str, text: &str) -> Result<(), OverrideError> {
        let key = keys::find(name).ok_or_else(|| OverrideError::UnknownKey(name.to_string()))?;
        let value = Value::parse(key.kind, text, &current_dir()).map_err(|source| {
            OverrideError::Value {
                flag: key.flag.name(),
                source,
            }
        })?;
        self.put(key, value);
        Ok(())
    }

    /// From the pairs the generated flags give (`crate::cli::KeyFlags::values`).
    pub fn from_pairs<K: AsRef<str>, V: AsRef<str>>(
        pairs: &[(K, V)],
    ) -> Result<ConfigOverrides, OverrideError> {
        let mut o = ConfigOverrides::default();
        for (k, v) in pairs {
            o.set(k.as_ref(), v.as_ref())?;
        }
        Ok(o)
    }

    /// Extra variables (`-e`), merged key by key over the file's `extra_vars`.
    pub fn extra_vars(&mut self, vars: RawVars) {
        if !vars.is_empty() {
            if let Some(key) = keys::find("extra_vars") {
                self.put(key, Value::Vars(vars));
            }
        }
    }

    /// The playbook (`--playbook`), checked with the rest by `Config::validate`.
    pub fn playbook(&mut self, playbook: Option<String>) {
        if let (Some(p), Some(key)) = (playbook, keys::find("playbook")) {
            self.put(key, Value::Text(p));
        }
    }

    /// The inventory (`--inventory`), checked with the rest by `Config::validate`.
    pub fn inventory(&mut self, inventory: Option<String>) {
        if let (Some(p), Some(key)) = (inventory, keys::find("inventory")) {
            self.put(key, Value::Text(p));
        }
    }

    fn put(&mut self, key: &'static Key, value: Value) {
        let slot = self.values.iter_mut().find(|(k, _)| k.name == key.name);
        match (slot, value) {
            (Some((_, Value::Paths(list))), Value::Paths(more)) => list.extend(more),
            (Some((_, Value::Names(list))), Value::Names(more)) => list.extend(more),
            (Some((_, Value::Vars(vars))), Value::Vars(more)) => vars.extend(more),
            (Some((_, old)), value) => *old = value,
            (None, value) => self.values.push((key, value)),
        }
    }

    /// The keys given, with their values.
    pub(super) fn into_values(self) -> Vec<(&'static Key, Value)> {
        self.values
    }

    /// No key is given.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}
