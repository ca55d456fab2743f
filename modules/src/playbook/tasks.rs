//! Task files, task lists, blocks and tasks with their keywords.

use std::sync::Arc;

use super::loops::LoopKeywords;
use super::*;
use crate::error::{LoadError, Location};
use crate::yaml::{Entry, Node, NodeKind};

impl Loader<'_> {
    pub(super) fn task_file(
        &mut self,
        path: &RepoPath,
        role: Option<Arc<Role>>,
        handlers: bool,
    ) -> Vec<Item> {
        match self.parse_file(path) {
            Ok(node) => {
                let file: Arc<str> = Arc::from(path.as_str());
                self.task_list(&node, &file, role, handlers)
            }
            Err(e) => {
                self.errors.push(e);
                Vec::new()
            }
        }
    }

    pub(super) fn task_list_key(
        &mut self,
        node: &Node,
        key: &str,
        file: &Arc<str>,
        role: Option<Arc<Role>>,
        handlers: bool,
    ) -> Vec<Item> {
        match node.get(key) {
            Some(n) => self.task_list(n, file, role, handlers),
            None => Vec::new(),
        }
    }

    pub(super) fn task_list(
        &mut self,
        node: &Node,
        file: &Arc<str>,
        role: Option<Arc<Role>>,
        handlers: bool,
    ) -> Vec<Item> {
        match &node.kind {
            NodeKind::Seq(items) => items
                .iter()
                .filter_map(|n| self.item(n, file, role.clone(), handlers))
                .collect(),
            NodeKind::Null => Vec::new(),
            _ => {
                self.errors.push(LoadError::at(
                    Location::new(file.clone(), node.line),
                    format!("a task list must be a list, not {}", node.type_name()),
                ));
                Vec::new()
            }
        }
    }

    pub(super) fn item(
        &mut self,
        node: &Node,
        file: &Arc<str>,
        role: Option<Arc<Role>>,
        handler: bool,
    ) -> Option<Item> {
        let loc = Location::new(file.clone(), node.line);
        let Some(entries) = node.as_map() else {
            self.errors.push(LoadError::at(
                loc,
                format!("a task must be a mapping, not {}", node.type_name()),
            ));
            return None;
        };
        if entries.iter().any(|e| e.key == "block") {
            return self.block(node, entries, file, role, handler, loc);
        }
        self.task(node, entries, file, role, handler, loc)
            .map(Item::Task)
    }

    pub(super) fn block(
        &mut self,
        node: &Node,
        entries: &[Entry],
        file: &Arc<str>,
        role: Option<Arc<Role>>,
        handler: bool,
        loc: Location,
    ) -> Option<Item> {
        for e in entries {
            let k = e.key.as_str();
            if !is_common_key(k) && !BLOCK_KEYS.contains(&k) {
                self.errors.push(
                    LoadError::at(
                        Location::new(file.clone(), e.key_line),
                        format!("unsupported block keyword `{k}`"),
                    )
                    .with_key(k),
                );
            }
        }
        let common = self.common(entries, file);
        let saved = self.push_scope(entries, file);
        let block = Block {
            name: node
                .get("name")
                .and_then(|n| n.as_str())
                .map(str::to_string),
            common,
            block: self.task_list_key(node, "block", file, role.clone(), handler),
            rescue: self.task_list_key(node, "rescue", file, role.clone(), handler),
            always: self.task_list_key(node, "always", file, role.clone(), handler),
            role,
            run_key: None,
            location: loc,
        };
        self.scope = saved;
        Some(Item::Block(Arc::new(block)))
    }

    pub(super) fn task(
        &mut self,
        node: &Node,
        entries: &[Entry],
        file: &Arc<str>,
        role: Option<Arc<Role>>,
        handler: bool,
        loc: Location,
    ) -> Option<Arc<Task>> {
        // Every key that is not a keyword is a candidate action.
        let actions: Vec<&Entry> = entries
            .iter()
            .filter(|e| {
                let k = e.key.as_str();
                !is_common_key(k) && !TASK_KEYS.contains(&k) && !k.starts_with("with_")
            })
            .collect();
        self.check_with_keys(entries, file);
        for e in entries {
            let k = e.key.as_str();
            if k == "listen" && !handler {
                self.errors.push(
                    LoadError::at(
                        Location::new(file.clone(), e.key_line),
                        "`listen` is only valid on handlers",
                    )
                    .with_key(k),
                );
            }
        }
        let action_entry = match actions.as_slice() {
            [one] => *one,
            [] => {
                self.errors
                    .push(LoadError::at(loc, "no module or action in this task"));
                return None;
            }
            many => {
                let names: Vec<&str> = many.iter().map(|e| e.key.as_str()).collect();
                self.errors.push(
                    LoadError::at(
                        Location::new(file.clone(), many[1].key_line),
                        format!(
                            "conflicting action statements: {} (or an unsupported task keyword)",
                            names.join(", ")
                        ),
                    )
                    .with_key(many[1].key.clone()),
                );
                return None;
            }
        };
        let mut common = self.common(entries, file);
        let key_loc = Location::new(file.clone(), action_entry.key_line);
        let local;
        let action_entry = if action_entry.key == "local_action" {
            if common.delegate_to.is_some() {
                self.errors.push(
                    LoadError::at(
                        key_loc.clone(),
                        "`local_action` and `delegate_to` are mutually exclusive",
                    )
                    .with_key("local_action"),
                );
                return None;
            }
            // The module it names, run with `delegate_to: localhost`.
            local = self.action_keyword(action_entry, file)?;
            common.delegate_to = Some(Value::from("localhost"));
            &local
        } else {
            action_entry
        };
        // The task's own loading keywords apply to its action (and to what it imports).
        let saved = self.push_scope(entries, file);
        let action = match self.unsupported_task_keywords(node, file) {
            Some(e) => self.unsupported(&action_entry.key, e),
            None => self.action(
                action_entry,
                node.get("args"),
                file,
                role.clone(),
                &key_loc,
                handler,
            ),
        };
        self.scope = saved;
        let action = action?;

        let LoopKeywords {
            loop_items,
            loop_var,
            index_var,
            label,
        } = self.loop_keywords(node, entries, file);
        let conds =
            |this: &mut Self, key: &str| node.get(key).map(|n| this.conditions(n, file, key));
        let changed_when = conds(self, "changed_when");
        let failed_when = conds(self, "failed_when");
        let until = conds(self, "until");
        let retries = node
            .get("retries")
            .map(|n| self.number(n, file, "retries", false));
        let delay = node
            .get("delay")
            .map(|n| self.number(n, file, "delay", true));
        let notify = common.notify.clone().unwrap_or_default();
        Some(Arc::new(Task {
            name: node.get("name").map(|n| match &n.kind {
                NodeKind::Str(s) => s.clone(),
                _ => n.to_value().to_string(),
            }),
            action,
            common,
            loop_items,
            loop_var,
            index_var,
            label,
            notify,
            listen: node
                .get("listen")
                .map(|n| self.string_list(n, file, "listen"))
                .unwrap_or_default(),
            register: match node.get("register") {
                Some(r) => match r.as_str() {
                    Some(v) if is_identifier(v) => Some(v.to_string()),
                    _ => {
                        self.errors.push(
                            LoadError::at(
                                Location::new(file.clone(), r.line),
                                "`register` must be a variable name",
                            )
                            .with_key("register"),
                        );
                        None
                    }
                },
                None => None,
            },
            changed_when,
            failed_when,
            until,
            retries,
            delay,
            role,
            location: loc,
        }))
    }
}

/// Keywords of task control flow: `notify`, `until`'s `retries`/`delay`, `delegate_to`,
/// `run_once`, `local_action`.
impl Loader<'_> {
    /// A scalar keyword that may be a template (rendered when the task runs).
    pub(super) fn templated_scalar(&mut self, node: &Node, file: &Arc<str>) -> Value {
        self.check_templates(node, file);
        node.to_value()
    }

    /// `notify`: a handler name or a list of them (a string is one name, commas included).
    pub(super) fn notify_list(&mut self, node: &Node, file: &Arc<str>) -> Vec<String> {
        match &node.kind {
            NodeKind::Str(s) => vec![s.clone()],
            NodeKind::Null => Vec::new(),
            _ => self.string_list(node, file, "notify"),
        }
    }

    /// `retries` (an integer) or `delay` (a number): literal, or a template rendered when the
    /// task runs.
    fn number(&mut self, node: &Node, file: &Arc<str>, key: &str, float: bool) -> Value {
        let ok = match &node.kind {
            NodeKind::Int(_) => true,
            NodeKind::Float(_) => float,
            NodeKind::Str(s) if Templar::is_template(s) => {
                self.check_templates(node, file);
                true
            }
            NodeKind::Str(s) => {
                if float {
                    s.trim().parse::<f64>().is_ok()
                } else {
                    s.trim().parse::<i64>().is_ok()
                }
            }
            _ => false,
        };
        if !ok {
            self.errors.push(
                LoadError::at(
                    Location::new(file.clone(), node.line),
                    format!(
                        "`{key}` must be {}",
                        if float { "a number" } else { "an integer" }
                    ),
                )
                .with_key(key),
            );
        }
        node.to_value()
    }
}
