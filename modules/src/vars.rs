//! The variables a task sees: layers merged by Ansible's precedence, with templates inside
//! variables rendered lazily, when a variable is used (so `a: "{{ b }}"` sees the final `b`).

use std::collections::{HashMap, HashSet};
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
    /// For `hostvars[inventory_hostname]`, which shows only host-level variables (inventory,
    /// group and host vars, facts, set_fact/register, extra vars, magic; not play, role, block
    /// or task vars): the keys whose value in `vars` is not host-level, each with the
    /// host-level value it hides (`None`: none). `None` here: every variable is host-level.
    not_host: Option<HashMap<String, Option<Value>>>,
    /// Variables above every layer, looked up before `vars` instead of merged into it (the
    /// run's and the play's magic variables: shared, and many, for every task's scope).
    over: Vec<Arc<IndexMap<String, Value>>>,
    /// Variables whose value is final data (a registered result, a set fact, a loop item),
    /// never rendered again: Ansible does not re-template results.
    literal: HashSet<String>,
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

    /// Merges `layers`, lowest precedence first; a layer marked `literal` holds final data
    /// (registered results, set facts) whose strings are not templates.
    pub fn with_literal_layers<'a>(
        templar: Arc<Templar>,
        layers: impl IntoIterator<Item = (&'a IndexMap<String, Value>, bool)>,
    ) -> Scope {
        let layers = layers.into_iter().map(|(l, literal)| {
            (
                l,
                Layer {
                    host_level: true,
                    literal,
                },
            )
        });
        Scope::with_layers(templar, layers, false)
    }

    /// As [`Scope::with_hash_merge`], with each layer marked host-level (seen through
    /// `hostvars`) or not, and literal (final data, not templates) or not.
    pub fn with_layers<'a>(
        templar: Arc<Templar>,
        layers: impl IntoIterator<Item = (&'a IndexMap<String, Value>, Layer)>,
        merge: bool,
    ) -> Scope {
        // One map, and beside it the few keys a non-host layer set (cheaper than a second map
        // of the host-level layers: a scope is built for every task).
        let mut vars: IndexMap<String, Value> = IndexMap::new();
        let mut not_host: HashMap<String, Option<Value>> = HashMap::new();
        let mut literal: HashSet<String> = HashSet::new();
        for (layer, kind) in layers {
            if kind.host_level {
                if !not_host.is_empty() {
                    for k in layer.keys() {
                        not_host.remove(k);
                    }
                }
            } else {
                for k in layer.keys() {
                    if !not_host.contains_key(k) {
                        not_host.insert(k.clone(), vars.get(k).cloned());
                    }
                }
            }
            if kind.literal {
                literal.extend(layer.keys().cloned());
            } else if !literal.is_empty() {
                for k in layer.keys() {
                    literal.remove(k);
                }
            }
            put_layer(&mut vars, layer, merge);
        }
        let mut scope = Scope::from_vars(templar, vars, Some(not_host));
        scope.literal = literal;
        scope
    }

    /// Adds variables that win over every layer (no template is rendered in them).
    pub fn with_over(mut self, over: Vec<Arc<IndexMap<String, Value>>>) -> Scope {
        self.over = over;
        self
    }

    /// The host-level variables only (see `not_host`).
    fn host_level(self: &Arc<Self>) -> Arc<Scope> {
        let Some(not_host) = &self.not_host else {
            return self.clone();
        };
        let vars = self
            .vars
            .iter()
            .filter_map(|(k, v)| match not_host.get(k) {
                None => Some((k.clone(), v.clone())),
                Some(hidden) => hidden.clone().map(|h| (k.clone(), h)),
            })
            .collect();
        let mut scope =
            Scope::from_vars(self.templar.clone(), vars, None).with_over(self.over.clone());
        scope.literal = self.literal.clone();
        Arc::new(scope)
    }

    fn from_vars(
        templar: Arc<Templar>,
        vars: IndexMap<String, Value>,
        not_host: Option<HashMap<String, Option<Value>>>,
    ) -> Scope {
        Scope {
            vars,
            not_host,
            over: Vec::new(),
            literal: HashSet::new(),
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

/// What a layer of variables is, for [`Scope::with_layers`].
#[derive(Debug, Clone, Copy)]
pub struct Layer {
    /// Seen through `hostvars[inventory_hostname]` (inventory, group/host vars, facts, …).
    pub host_level: bool,
    /// Final data (registered results, set facts, loop items): never rendered again.
    pub literal: bool,
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
            return Some(map_value([(me, Value::from_dyn_object(self.host_level()))]));
        }
        if let Some(v) = self.over.iter().find_map(|o| o.get(name)) {
            return Some(v.clone());
        }
        let raw = self.vars.get(name)?;
        if crate::facts::lazy::is_fact_value(raw) {
            // Facts hold no templates; a lazy one is read now.
            let v = crate::facts::lazy::resolve(raw);
            return (!v.is_undefined()).then_some(v);
        }
        if !has_template(raw) || self.literal.contains(name) {
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
        let mut keys: Vec<Value> = self.vars.keys().map(|k| Value::from(k.as_str())).collect();
        for o in &self.over {
            for k in o.keys() {
                if !self.vars.contains_key(k) {
                    keys.push(Value::from(k.as_str()));
                }
            }
        }
        Enumerator::Values(keys)
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
    fn literal_layers_are_never_rendered_again() {
        let templar = Arc::new(Templar::new());
        let mut result = IndexMap::new();
        result.insert("out".to_string(), Value::from("{{ not_defined }}"));
        result.insert("over".to_string(), Value::from("{{ 1 + 1 }}"));
        let mut high = IndexMap::new();
        high.insert("over".to_string(), Value::from("{{ 2 + 2 }}"));
        let empty = IndexMap::new();
        let (v, _) = Scope::with_literal_layers(
            templar.clone(),
            [(&empty, false), (&result, true), (&high, false)],
        )
        .into_value();
        let out = templar.render_str("{{ out }}|{{ over }}", &v).unwrap();
        // A later template layer over a literal one is rendered as usual.
        assert_eq!(out.as_str(), Some("{{ not_defined }}|4"));
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
