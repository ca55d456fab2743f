//! The variables a task sees: layers merged by Ansible's precedence, with templates inside
//! variables rendered lazily, when a variable is used (so `a: "{{ b }}"` sees the final `b`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use indexmap::IndexMap;
use minijinja::value::{Enumerator, Object, ObjectRepr};
use minijinja::Value;

use crate::template::{Templar, TemplateError};

/// Why a variable has no value although it is defined.
#[derive(Debug, thiserror::Error)]
pub enum VarError {
    /// The variable's template needs the variable itself.
    #[error("recursive loop detected in variable `{name}`")]
    Recursive { name: String },
    /// The variable's template failed to render.
    #[error("variable `{name}`: {source}")]
    Render {
        name: String,
        #[source]
        source: TemplateError,
    },
}

/// One task's view of its variables. Cheap to build: values are shared, not copied.
#[derive(Debug)]
pub struct Scope {
    vars: IndexMap<String, Value>,
    /// The host-level variables `hostvars[inventory_hostname]` shows (inventory, group and
    /// host vars, facts, set_fact/register, extra vars, magic; not play, role, block or task
    /// vars); `None`: all of `vars`.
    host_level: Option<IndexMap<String, Value>>,
    templar: Arc<Templar>,
    cache: Mutex<HashMap<String, Value>>,
    resolving: Mutex<Vec<String>>,
    /// The first error met while rendering a variable: `get_value` cannot return errors, so
    /// the engine reports this one instead of the plain "undefined" that follows.
    error: Mutex<Option<VarError>>,
}

impl Scope {
    /// Merges `layers`, lowest precedence first.
    pub fn new<'a>(
        templar: Arc<Templar>,
        layers: impl IntoIterator<Item = &'a IndexMap<String, Value>>,
    ) -> Scope {
        Scope::with_hash_merge(templar, layers, false)
    }

    /// As [`Scope::new`]; with `merge` (ansible.cfg `hash_behaviour = merge`) a mapping over a
    /// mapping merges recursively ([`merge_hash`]) instead of replacing it.
    pub fn with_hash_merge<'a>(
        templar: Arc<Templar>,
        layers: impl IntoIterator<Item = &'a IndexMap<String, Value>>,
        merge: bool,
    ) -> Scope {
        let mut vars: IndexMap<String, Value> = IndexMap::new();
        for layer in layers {
            put_layer(&mut vars, layer, merge);
        }
        Scope::from_vars(templar, vars, None)
    }

    /// As [`Scope::with_hash_merge`], with each layer marked host-level (seen through
    /// `hostvars`) or not.
    pub fn with_host_layers<'a>(
        templar: Arc<Templar>,
        layers: impl IntoIterator<Item = (&'a IndexMap<String, Value>, bool)>,
        merge: bool,
    ) -> Scope {
        let mut vars: IndexMap<String, Value> = IndexMap::new();
        let mut host: IndexMap<String, Value> = IndexMap::new();
        for (layer, host_level) in layers {
            put_layer(&mut vars, layer, merge);
            if host_level {
                put_layer(&mut host, layer, merge);
            }
        }
        Scope::from_vars(templar, vars, Some(host))
    }

    fn from_vars(
        templar: Arc<Templar>,
        vars: IndexMap<String, Value>,
        host_level: Option<IndexMap<String, Value>>,
    ) -> Scope {
        Scope {
            vars,
            host_level,
            templar,
            cache: Mutex::new(HashMap::new()),
            resolving: Mutex::new(Vec::new()),
            error: Mutex::new(None),
        }
    }

    pub fn into_value(self) -> (Value, Arc<Scope>) {
        let arc = Arc::new(self);
        (Value::from_dyn_object(arc.clone()), arc)
    }

    /// The first error met while rendering a variable, as text (see [`Scope::take_var_error`]).
    pub fn take_error(&self) -> Option<String> {
        self.take_var_error().map(|e| e.to_string())
    }

    /// The first error met while rendering a variable (taken: the next call gives `None`).
    pub fn take_var_error(&self) -> Option<VarError> {
        self.error.lock().ok()?.take()
    }
}

/// A mapping value with its keys in the given order. (`Value::from_iter` of pairs makes a list
/// of pairs, not a mapping.)
pub fn map_value<K: Into<Value>>(pairs: impl IntoIterator<Item = (K, Value)>) -> Value {
    Value::from(
        pairs
            .into_iter()
            .map(|(k, v)| (k.into(), v))
            .collect::<IndexMap<Value, Value>>(),
    )
}

fn put_layer(vars: &mut IndexMap<String, Value>, layer: &IndexMap<String, Value>, merge: bool) {
    for (k, v) in layer {
        let v = match vars.get(k) {
            Some(old) if merge => merge_hash(old, v),
            _ => v.clone(),
        };
        vars.insert(k.clone(), v);
    }
}

/// ansible-core's `merge_hash` (ansible.cfg `hash_behaviour = merge`): two mappings merge
/// recursively, anything else is replaced by `new`.
pub fn merge_hash(old: &Value, new: &Value) -> Value {
    use minijinja::value::ValueKind;
    if old.kind() != ValueKind::Map || new.kind() != ValueKind::Map {
        return new.clone();
    }
    let mut out: IndexMap<Value, Value> = IndexMap::new();
    for k in old.try_iter().into_iter().flatten() {
        if let Ok(v) = old.get_item(&k) {
            out.insert(k, v);
        }
    }
    for k in new.try_iter().into_iter().flatten() {
        let Ok(v) = new.get_item(&k) else { continue };
        let v = match out.get(&k) {
            Some(o) => merge_hash(o, &v),
            None => v,
        };
        out.insert(k, v);
    }
    Value::from(out)
}

/// True when a string anywhere inside `v` holds a template.
pub fn has_template(v: &Value) -> bool {
    if let Some(s) = v.as_str() {
        return Templar::is_template(s);
    }
    match v.kind() {
        minijinja::value::ValueKind::Seq | minijinja::value::ValueKind::Map => {
            if let Ok(iter) = v.try_iter() {
                for item in iter {
                    if has_template(&item) {
                        return true;
                    }
                    if v.kind() == minijinja::value::ValueKind::Map {
                        if let Ok(inner) = v.get_item(&item) {
                            if has_template(&inner) {
                                return true;
                            }
                        }
                    }
                }
            }
            false
        }
        _ => false,
    }
}

impl Object for Scope {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Map
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let name = key.as_str()?;
        if name == "hostvars" && !self.vars.contains_key(name) {
            // This host's host-level variables (other hosts are not known to a local run).
            let me = self.vars.get("inventory_hostname")?.clone();
            let scope = match &self.host_level {
                Some(host) => Arc::new(Scope::from_vars(
                    self.templar.clone(),
                    host.clone(),
                    Some(host.clone()),
                )),
                None => self.clone(),
            };
            return Some(map_value([(me, Value::from_dyn_object(scope))]));
        }
        let raw = self.vars.get(name)?;
        if !has_template(raw) {
            return Some(raw.clone());
        }
        if let Some(v) = self.cache.lock().ok()?.get(name) {
            return Some(v.clone());
        }
        {
            let mut resolving = self.resolving.lock().ok()?;
            if resolving.iter().any(|r| r == name) {
                let mut err = self.error.lock().ok()?;
                err.get_or_insert_with(|| VarError::Recursive {
                    name: name.to_string(),
                });
                return None;
            }
            resolving.push(name.to_string());
        }
        let me = Value::from_dyn_object(self.clone());
        let rendered = self.templar.render_value(raw, &me);
        if let Ok(mut r) = self.resolving.lock() {
            r.retain(|x| x != name);
        }
        match rendered {
            Ok(v) => {
                if let Ok(mut c) = self.cache.lock() {
                    c.insert(name.to_string(), v.clone());
                }
                Some(v)
            }
            Err(e) => {
                if let Ok(mut err) = self.error.lock() {
                    err.get_or_insert_with(|| VarError::Render {
                        name: name.to_string(),
                        source: e,
                    });
                }
                None
            }
        }
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Values(self.vars.keys().map(|k| Value::from(k.as_str())).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_layers_win_and_templates_resolve_lazily() {
        let templar = Arc::new(Templar::new());
        let mut low = IndexMap::new();
        low.insert("a".to_string(), Value::from("{{ b }}-x"));
        low.insert("b".to_string(), Value::from("low"));
        let mut high = IndexMap::new();
        high.insert("b".to_string(), Value::from("high"));
        let (v, _) = Scope::new(templar.clone(), [&low, &high]).into_value();
        let out = templar.render_str("{{ a }}", &v).unwrap();
        assert_eq!(out.as_str(), Some("high-x"));
    }

    #[test]
    fn merge_hash_merges_mappings_recursively() {
        let a = map_value([
            (
                "x",
                map_value([("a", Value::from(1)), ("b", Value::from(2))]),
            ),
            ("l", Value::from(vec![1])),
        ]);
        let b = map_value([
            (
                "x",
                map_value([("b", Value::from(3)), ("c", Value::from(4))]),
            ),
            ("l", Value::from(vec![2])),
        ]);
        let m = merge_hash(&a, &b);
        assert_eq!(m.to_string(), "{'x': {'a': 1, 'b': 3, 'c': 4}, 'l': [2]}");
    }

    #[test]
    fn recursion_is_an_error_not_a_hang() {
        let templar = Arc::new(Templar::new());
        let mut vars = IndexMap::new();
        vars.insert("a".to_string(), Value::from("{{ a }}"));
        let (v, scope) = Scope::new(templar.clone(), [&vars]).into_value();
        assert!(templar.render_str("{{ a }}", &v).is_err());
        assert_eq!(
            scope.take_error().as_deref(),
            Some("recursive loop detected in variable `a`")
        );
        assert!(scope.take_error().is_none());
    }

    #[test]
    fn a_failing_variable_keeps_the_template_error_as_source() {
        let templar = Arc::new(Templar::new());
        let mut vars = IndexMap::new();
        vars.insert("a".to_string(), Value::from("{{ nope }}"));
        let (v, scope) = Scope::new(templar.clone(), [&vars]).into_value();
        assert!(templar.render_str("{{ a }}", &v).is_err());
        let e = scope.take_var_error().unwrap();
        let source = std::error::Error::source(&e).unwrap().to_string();
        assert!(
            matches!(&e, VarError::Render { name, .. } if name == "a"),
            "{e:?}"
        );
        assert_eq!(e.to_string(), format!("variable `a`: {source}"));
        assert!(source.contains("nope"), "{source}");
    }
}
