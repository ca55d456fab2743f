//! A task's loop keywords: `loop`, every `with_<lookup>` and `loop_control`.
//!
//! `with_<name>: terms` is `loop: "{{ query('<name>', terms) }}"` (ansible-core runs the lookup
//! with the rendered terms); `with_items` is the `items` lookup, which flattens one level. A
//! `with_` naming a lookup the agent does not implement is refused here, at load.

use std::sync::Arc;

use super::*;
use crate::error::{LoadError, Location};
use crate::yaml::{Entry, Node, NodeKind};

/// What the loop keywords of a task say.
pub(super) struct LoopKeywords {
    pub loop_items: Option<Loop>,
    pub loop_var: String,
    pub index_var: Option<String>,
    pub label: Option<Value>,
}

/// The lookup a `with_<name>` key names, if the agent implements it.
fn with_lookup(key: &str) -> Option<&'static str> {
    // `with_community.general.flattened` names the lookup by its collection, as `lookup()` may.
    let name = crate::lookup::short_name(key.strip_prefix("with_")?);
    crate::lookup::NAMES.iter().copied().find(|n| *n == name)
}

impl Loader<'_> {
    /// Refuses `with_` keys that name no lookup the agent implements.
    pub(super) fn check_with_keys(&mut self, entries: &[Entry], file: &Arc<str>) {
        for e in entries {
            let k = e.key.as_str();
            if k.starts_with("with_") && with_lookup(k).is_none() {
                self.errors.push(
                    LoadError::at(
                        Location::new(file.clone(), e.key_line),
                        format!(
                            "unknown loop `{k}`: there is no lookup `{}` (loops: `loop`, or `with_` and one of: {})",
                            &k[5..],
                            crate::lookup::NAMES.join(", ")
                        ),
                    )
                    .with_key(k),
                );
            }
        }
    }

    pub(super) fn loop_keywords(
        &mut self,
        node: &Node,
        entries: &[Entry],
        file: &Arc<str>,
    ) -> LoopKeywords {
        let mut loop_items: Option<Loop> = None;
        for e in entries {
            let with = match e.key.as_str() {
                "loop" => None,
                k => match with_lookup(k) {
                    Some(name) => Some(name),
                    None => continue,
                },
            };
            if loop_items.is_some() {
                self.errors.push(
                    LoadError::at(
                        Location::new(file.clone(), e.key_line),
                        "only one loop keyword per task",
                    )
                    .with_key(e.key.clone()),
                );
            }
            if with.is_some() && matches!(e.value.kind, NodeKind::Null) {
                self.errors.push(
                    LoadError::at(
                        Location::new(file.clone(), e.key_line),
                        format!("you must specify a value when using {}", e.key),
                    )
                    .with_key(e.key.clone()),
                );
            }
            self.check_templates(&e.value, file);
            loop_items = Some(Loop {
                items: e.value.to_value(),
                with,
                pause: None,
                extended: false,
                extended_allitems: true,
            });
        }
        let mut out = LoopKeywords {
            loop_items,
            loop_var: "item".to_string(),
            index_var: None,
            label: None,
        };
        if let Some(lc) = node.get("loop_control") {
            match lc.as_map() {
                Some(lce) => self.loop_control(lce, file, &mut out),
                None => self.errors.push(
                    LoadError::at(
                        Location::new(file.clone(), lc.line),
                        "`loop_control` must be a mapping",
                    )
                    .with_key("loop_control"),
                ),
            }
        }
        out
    }

    fn loop_control(&mut self, entries: &[Entry], file: &Arc<str>, out: &mut LoopKeywords) {
        let at = |e: &Entry| Location::new(file.clone(), e.key_line);
        for e in entries {
            let key = e.key.as_str();
            match key {
                "loop_var" | "index_var" => match e.value.as_str() {
                    Some(v) if is_identifier(v) => {
                        if key == "loop_var" {
                            out.loop_var = v.to_string();
                        } else {
                            out.index_var = Some(v.to_string());
                        }
                    }
                    _ => self.errors.push(
                        LoadError::at(at(e), format!("`{key}` must be a variable name"))
                            .with_key(key),
                    ),
                },
                "label" => out.label = Some(e.value.to_value()),
                "pause" => match &e.value.kind {
                    NodeKind::Int(_) | NodeKind::Float(_) => {
                        self.set_loop(|l| l.pause = Some(e.value.to_value()), out)
                    }
                    NodeKind::Str(s) if Templar::is_template(s) => {
                        self.check_templates(&e.value, file);
                        self.set_loop(|l| l.pause = Some(e.value.to_value()), out)
                    }
                    _ => self.errors.push(
                        LoadError::at(at(e), "`pause` must be a number of seconds").with_key(key),
                    ),
                },
                "extended" => {
                    let b = self.bool_node(&e.value, file, key);
                    self.set_loop(|l| l.extended = b, out);
                }
                "extended_allitems" => {
                    let b = self.bool_node(&e.value, file, key);
                    self.set_loop(|l| l.extended_allitems = b, out);
                }
                k => self.errors.push(
                    LoadError::at(
                        at(e),
                        format!(
                            "unsupported `loop_control` key `{k}` (supported: {})",
                            LOOP_CONTROL_KEYS.join(", ")
                        ),
                    )
                    .with_key(k),
                ),
            }
        }
    }

    /// `loop_control` of a task without a loop has no effect (as in Ansible).
    fn set_loop(&mut self, f: impl FnOnce(&mut Loop), out: &mut LoopKeywords) {
        if let Some(l) = out.loop_items.as_mut() {
            f(l);
        }
    }
}
