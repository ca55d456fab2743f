//! Task files, task lists, blocks and tasks with their keywords.

use std::sync::Arc;

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
        for e in entries {
            let k = e.key.as_str();
            if k.starts_with("with_") && k != "with_items" && k != "with_list" {
                self.errors.push(
                    LoadError::at(
                        Location::new(file.clone(), e.key_line),
                        format!("unsupported loop `{k}` (use `loop` or `with_items`)"),
                    )
                    .with_key(k),
                );
            }
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
        let common = self.common(entries, file);
        let key_loc = Location::new(file.clone(), action_entry.key_line);
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

        let mut loop_items = None;
        for (key, flatten) in [("loop", false), ("with_items", true), ("with_list", false)] {
            if let Some(n) = node.get(key) {
                if loop_items.is_some() {
                    self.errors.push(
                        LoadError::at(
                            Location::new(file.clone(), n.line),
                            "only one loop keyword per task",
                        )
                        .with_key(key),
                    );
                }
                self.check_templates(n, file);
                loop_items = Some(Loop {
                    items: n.to_value(),
                    flatten,
                });
            }
        }
        let mut loop_var = "item".to_string();
        let mut index_var = None;
        let mut label = None;
        if let Some(lc) = node.get("loop_control") {
            match lc.as_map() {
                Some(lce) => {
                    for e in lce {
                        match e.key.as_str() {
                            "loop_var" => match e.value.as_str() {
                                Some(v) if is_identifier(v) => loop_var = v.to_string(),
                                _ => self.errors.push(
                                    LoadError::at(
                                        Location::new(file.clone(), e.key_line),
                                        "`loop_var` must be a variable name",
                                    )
                                    .with_key("loop_var"),
                                ),
                            },
                            "index_var" => index_var = e.value.as_str().map(str::to_string),
                            "label" => label = Some(e.value.to_value()),
                            k => self.errors.push(
                                LoadError::at(
                                    Location::new(file.clone(), e.key_line),
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
                None => self.errors.push(
                    LoadError::at(
                        Location::new(file.clone(), lc.line),
                        "`loop_control` must be a mapping",
                    )
                    .with_key("loop_control"),
                ),
            }
        }
        let conds =
            |this: &mut Self, key: &str| node.get(key).map(|n| this.conditions(n, file, key));
        let changed_when = conds(self, "changed_when");
        let failed_when = conds(self, "failed_when");
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
            notify: node
                .get("notify")
                .map(|n| self.string_list(n, file, "notify"))
                .unwrap_or_default(),
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
            role,
            location: loc,
        }))
    }
}
