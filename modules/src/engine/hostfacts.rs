//! Facts as Ansible's fact cache holds them: gathered facts, plus `set_fact` with
//! `cacheable: true` (visible as `ansible_facts.NAME` too), until `meta: clear_facts`.

use std::sync::Arc;

use indexmap::IndexMap;
use minijinja::Value;

use super::Engine;
use crate::facts::lazy::FactsMap;
use crate::playbook::RawVars;

impl Engine<'_> {
    /// `clear_facts`: the gathered facts are forgotten (the next play gathers them again if
    /// it asks); `ansible_facts` is empty. set_fact's variables stay, as in Ansible.
    pub(super) fn clear_facts(&mut self) {
        self.facts = None;
        self.cached_facts.clear();
        let mut cleared = RawVars::new();
        cleared.insert(
            "ansible_facts".into(),
            crate::vars::map_value(Vec::<(&str, Value)>::new()),
        );
        self.replace_facts_layer(Arc::new(cleared));
    }

    /// The play's facts layer: `base` (gathered facts, or none) with the cached facts.
    pub(super) fn with_cached_facts(&self, base: Arc<RawVars>) -> Arc<RawVars> {
        if self.cached_facts.is_empty() {
            return base;
        }
        let mut layer = (*base).clone();
        // Lazy facts stay lazy: they are copied, not read.
        let mut namespaced = layer
            .get("ansible_facts")
            .map(fact_entries)
            .unwrap_or_default();
        for (k, v) in &self.cached_facts {
            layer.insert(k.clone(), v.clone());
            // Ansible's namespace_facts: `ansible_` is dropped inside `ansible_facts`, but
            // for `ansible_local`.
            let short = match k.strip_prefix("ansible_") {
                Some(s) if k != "ansible_local" => s,
                _ => k,
            };
            namespaced.insert(short.to_string(), v.clone());
        }
        layer.insert(
            "ansible_facts".into(),
            Value::from_object(FactsMap(namespaced)),
        );
        Arc::new(layer)
    }

    /// `set_fact` with `cacheable: true`: the facts join the fact cache.
    /// A module's `ansible_facts` (`setup`, `getent`, `package_facts`) join it the same way.
    pub(super) fn cache_facts(&mut self, facts: &Value) {
        for (name, v) in fact_entries(facts) {
            self.cached_facts.insert(name, v);
        }
        let gathered = Arc::new(self.facts.clone().unwrap_or_default());
        let layer = self.with_cached_facts(gathered);
        self.replace_facts_layer(layer);
    }

    fn replace_facts_layer(&mut self, layer: Arc<RawVars>) {
        if let Some(slot) = self
            .play_vars
            .iter_mut()
            .find(|l| Arc::ptr_eq(l, &self.play_facts))
        {
            *slot = layer.clone();
        }
        self.play_facts = layer;
    }
}

/// The entries of a facts mapping; a [`FactsMap`]'s lazy facts are copied without being
/// computed.
fn fact_entries(facts: &Value) -> IndexMap<String, Value> {
    if let Some(map) = facts.downcast_object_ref::<FactsMap>() {
        return map.0.clone();
    }
    let mut out = IndexMap::new();
    for k in facts.try_iter().into_iter().flatten() {
        if let (Some(name), Ok(v)) = (k.as_str(), facts.get_item(&k)) {
            out.insert(name.to_string(), v);
        }
    }
    out
}
