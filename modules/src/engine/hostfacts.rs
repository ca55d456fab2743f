//! Facts as Ansible's fact cache holds them: gathered facts, plus `set_fact` with
//! `cacheable: true` (visible as `ansible_facts.NAME` too), until `meta: clear_facts`.

use std::sync::Arc;

use indexmap::IndexMap;
use minijinja::Value;

use super::Engine;
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
        let mut namespaced: IndexMap<Value, Value> = IndexMap::new();
        if let Some(af) = layer.get("ansible_facts") {
            for k in af.try_iter().into_iter().flatten() {
                if let Ok(v) = af.get_item(&k) {
                    namespaced.insert(k, v);
                }
            }
        }
        for (k, v) in &self.cached_facts {
            layer.insert(k.clone(), v.clone());
            // Ansible's namespace_facts: `ansible_` is dropped inside `ansible_facts`.
            let short = k.strip_prefix("ansible_").unwrap_or(k);
            namespaced.insert(Value::from(short), v.clone());
        }
        layer.insert("ansible_facts".into(), Value::from(namespaced));
        Arc::new(layer)
    }

    /// `set_fact` with `cacheable: true`: the facts join the fact cache.
    pub(super) fn cache_facts(&mut self, facts: &Value) {
        for k in facts.try_iter().into_iter().flatten() {
            if let (Some(name), Ok(v)) = (k.as_str(), facts.get_item(&k)) {
                self.cached_facts.insert(name.to_string(), v);
            }
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
