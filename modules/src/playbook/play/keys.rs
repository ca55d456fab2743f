//! The play keywords that only need checking here: fact gathering options (facts are read
//! lazily), the batch and strategy keywords (one host), `vars_prompt` (a daemon cannot prompt),
//! and delegation on a role entry.

use std::sync::Arc;

use super::super::*;
use crate::error::{LoadError, Location};
use crate::yaml::{Entry, Node, NodeKind};

/// Strategies that, for one host, run tasks as `linear` does.
const STRATEGIES: &[&str] = &[
    "linear",
    "free",
    "host_pinned",
    "ansible.builtin.linear",
    "ansible.builtin.free",
    "ansible.builtin.host_pinned",
];

const PROMPT_KEYS: &[&str] = &[
    "name",
    "prompt",
    "default",
    "private",
    "confirm",
    "encrypt",
    "salt",
    "salt_size",
    "unsafe",
];

impl Loader<'_> {
    pub(in crate::playbook) fn play_keywords(&mut self, node: &Node, file: &Arc<str>) {
        for key in [
            "gather_subset",
            "gather_timeout",
            "fact_path",
            "serial",
            "max_fail_percentage",
            "order",
        ] {
            if let Some(n) = node.get(key) {
                self.check_templates(n, file);
            }
        }
        if let Some(n) = node.get("strategy") {
            if !n.as_str().is_some_and(|s| STRATEGIES.contains(&s)) {
                self.errors.push(
                    LoadError::at(
                        Location::new(file.clone(), n.line),
                        "only the `linear`, `free` and `host_pinned` strategies are supported \
                         (the same for one host; `debug` needs a terminal)",
                    )
                    .with_key("strategy"),
                );
            }
        }
        if let Some(n) = node.get("order") {
            const ORDERS: &[&str] = &[
                "inventory",
                "reverse_inventory",
                "sorted",
                "reverse_sorted",
                "shuffle",
            ];
            if !n.as_str().is_some_and(|s| ORDERS.contains(&s)) {
                self.errors.push(
                    LoadError::at(
                        Location::new(file.clone(), n.line),
                        format!("`order` must be one of: {}", ORDERS.join(", ")),
                    )
                    .with_key("order"),
                );
            }
        }
        if let Some(n) = node.get("vars_prompt") {
            self.vars_prompt(n, file);
        }
    }

    /// Each prompted variable must be given with `-e`: the agent never prompts.
    fn vars_prompt(&mut self, node: &Node, file: &Arc<str>) {
        let items: Vec<&Node> = match &node.kind {
            NodeKind::Seq(items) => items.iter().collect(),
            NodeKind::Null => Vec::new(),
            _ => vec![node],
        };
        for item in items {
            let at = Location::new(file.clone(), item.line);
            let Some(entries) = item.as_map() else {
                self.errors.push(
                    LoadError::at(at, "a `vars_prompt` entry must be a mapping with `name`")
                        .with_key("vars_prompt"),
                );
                continue;
            };
            for e in entries {
                if !PROMPT_KEYS.contains(&e.key.as_str()) {
                    self.errors.push(
                        LoadError::at(
                            Location::new(file.clone(), e.key_line),
                            format!("unknown `vars_prompt` key `{}`", e.key),
                        )
                        .with_key(e.key.clone()),
                    );
                }
            }
            let Some(name) = item.get("name").and_then(|n| n.as_str()) else {
                self.errors
                    .push(LoadError::at(at, "a `vars_prompt` entry needs `name`").with_key("name"));
                continue;
            };
            if !self.given_vars.iter().any(|g| g == name) {
                self.errors.push(
                    LoadError::at(
                        at,
                        format!(
                            "vars_prompt `{name}`: the agent cannot prompt; give it with -e \
                             {name}=..."
                        ),
                    )
                    .with_key("vars_prompt"),
                );
            }
        }
    }

    /// `delegate_to` on a role entry: only to this host.
    pub(in crate::playbook) fn role_delegation(&mut self, e: &Entry, file: &Arc<str>) {
        if e.key == "delegate_facts" {
            self.bool_node(&e.value, file, "delegate_facts");
            return;
        }
        let here = matches!(e.value.as_str(), Some("localhost" | "127.0.0.1"));
        if !here {
            self.errors.push(
                LoadError::at(
                    Location::new(file.clone(), e.key_line),
                    "a role's `delegate_to` other than localhost is not supported (the agent \
                     manages only this host)",
                )
                .with_key("delegate_to"),
            );
        }
    }
}
