//! Facts gathered only when a template asks for them: a fact whose reading costs more than a
//! small file (a process such as `python3` or `lsb_release`, one `statvfs` per mount) is
//! stored as a [`LazyFact`], computed on first use and kept for the run. [`crate::vars::Scope`]
//! resolves it when the variable is read; `ansible_facts` is a [`FactsMap`] that resolves its
//! items the same way, so the no-op converge pays for none of them.

use std::sync::{Arc, OnceLock};

use indexmap::IndexMap;
use minijinja::value::{Enumerator, Object, ObjectRepr};
use minijinja::Value;

type Compute = Arc<dyn Fn() -> Value + Send + Sync>;

/// A fact computed on first use (undefined when the host does not have it).
pub struct LazyFact {
    compute: Compute,
    cell: OnceLock<Value>,
}

impl std::fmt::Debug for LazyFact {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LazyFact")
    }
}

impl LazyFact {
    pub fn value(compute: impl Fn() -> Value + Send + Sync + 'static) -> Value {
        Value::from_object(LazyFact {
            compute: Arc::new(compute),
            cell: OnceLock::new(),
        })
    }

    fn get(&self) -> Value {
        self.cell.get_or_init(|| (self.compute)()).clone()
    }
}

impl Object for LazyFact {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Plain
    }
}

/// `v` itself, or the value of the lazy fact it is.
pub fn resolve(v: &Value) -> Value {
    match v.downcast_object_ref::<LazyFact>() {
        Some(l) => l.get(),
        None => v.clone(),
    }
}

/// True when `v` is a lazy fact or the facts mapping (values the scope gives as they are:
/// facts hold no templates, and looking inside would compute every lazy fact).
pub fn is_fact_value(v: &Value) -> bool {
    v.downcast_object_ref::<LazyFact>().is_some() || v.downcast_object_ref::<FactsMap>().is_some()
}

/// `ansible_facts`: the facts by their unprefixed names, lazy ones computed when read.
#[derive(Debug)]
pub struct FactsMap(pub IndexMap<String, Value>);

impl Object for FactsMap {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Map
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let v = resolve(self.0.get(key.as_str()?)?);
        (!v.is_undefined()).then_some(v)
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Values(self.0.keys().map(|k| Value::from(k.as_str())).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn computed_once_on_first_read() {
        static CALLS: AtomicUsize = AtomicUsize::new(0);
        let v = LazyFact::value(|| {
            CALLS.fetch_add(1, Ordering::SeqCst);
            Value::from(42)
        });
        assert_eq!(CALLS.load(Ordering::SeqCst), 0);
        let mut m = IndexMap::new();
        m.insert("x".to_string(), v.clone());
        m.insert("missing".to_string(), LazyFact::value(|| Value::UNDEFINED));
        let facts = Value::from_object(FactsMap(m));
        assert_eq!(facts.get_attr("x").unwrap(), Value::from(42));
        assert_eq!(resolve(&v), Value::from(42));
        assert_eq!(CALLS.load(Ordering::SeqCst), 1);
        assert!(facts.get_attr("missing").unwrap().is_undefined());
    }
}
