//! Checks and conversions of YAML values shared by plays, blocks and tasks: variables,
//! templates and expressions, conditions, lists of names, booleans.

use std::sync::Arc;

use minijinja::Value;

use super::*;
use crate::error::{LoadError, Location};
use crate::yaml::{Node, NodeKind};

impl Loader<'_> {
    pub(super) fn vars_map(&mut self, node: &Node, file: &Arc<str>) -> RawVars {
        match &node.kind {
            NodeKind::Map(entries) => {
                let mut out = RawVars::new();
                for e in entries {
                    if !is_identifier(&e.key) {
                        self.errors.push(
                            LoadError::at(
                                Location::new(file.clone(), e.key_line),
                                format!("`{}` is not a valid variable name", e.key),
                            )
                            .with_key(e.key.clone()),
                        );
                        continue;
                    }
                    self.check_templates(&e.value, file);
                    out.insert(e.key.clone(), e.value.to_value());
                }
                out
            }
            NodeKind::Null => RawVars::new(),
            _ => {
                self.errors.push(LoadError::at(
                    Location::new(file.clone(), node.line),
                    format!("variables must be a mapping, not {}", node.type_name()),
                ));
                RawVars::new()
            }
        }
    }

    /// Jinja syntax of every string inside `node`.
    pub(super) fn check_templates(&mut self, node: &Node, file: &Arc<str>) {
        match &node.kind {
            NodeKind::Str(s) if Templar::is_template(s) => {
                if let Err(e) = self.templar.check_syntax(s) {
                    self.errors.push(LoadError::at(
                        Location::new(file.clone(), node.line),
                        format!("template error: {e}"),
                    ));
                }
            }
            NodeKind::Seq(items) => {
                for i in items {
                    self.check_templates(i, file);
                }
            }
            NodeKind::Map(entries) => {
                for e in entries {
                    self.check_templates(&e.value, file);
                }
            }
            _ => {}
        }
    }

    pub(super) fn check_expr(&mut self, node: &Node, file: &Arc<str>, key: &str) {
        if let NodeKind::Str(s) = &node.kind {
            let res = if Templar::is_template(s) {
                self.templar.check_syntax(s)
            } else {
                self.templar.check_expr_syntax(s)
            };
            if let Err(e) = res {
                // Ansible evaluates a condition only when the task is reached (and a list of
                // them only up to the first false one): real roles carry broken conditions on
                // tasks that never run. A warning here; the evaluation fails when reached.
                self.warnings.push(
                    LoadError::at(
                        Location::new(file.clone(), node.line),
                        format!("invalid condition (fails when evaluated): {e}"),
                    )
                    .with_key(key),
                );
            }
        }
    }

    pub(super) fn conditions(&mut self, node: &Node, file: &Arc<str>, key: &str) -> Vec<Value> {
        match &node.kind {
            NodeKind::Seq(items) => items
                .iter()
                .map(|n| {
                    self.check_expr(n, file, key);
                    n.to_value()
                })
                .collect(),
            _ => {
                self.check_expr(node, file, key);
                vec![node.to_value()]
            }
        }
    }

    pub(super) fn string_list(&mut self, node: &Node, file: &Arc<str>, key: &str) -> Vec<String> {
        match &node.kind {
            NodeKind::Str(s) => s
                .split(',')
                .map(|p| p.trim().to_string())
                .filter(|p| !p.is_empty())
                .collect(),
            NodeKind::Seq(items) => items
                .iter()
                .filter_map(|n| match &n.kind {
                    NodeKind::Str(s) => Some(s.clone()),
                    NodeKind::Int(i) => Some(i.to_string()),
                    _ => {
                        self.errors.push(
                            LoadError::at(
                                Location::new(file.clone(), n.line),
                                format!("`{key}` must be a list of strings"),
                            )
                            .with_key(key),
                        );
                        None
                    }
                })
                .collect(),
            NodeKind::Int(i) => vec![i.to_string()],
            _ => {
                self.errors.push(
                    LoadError::at(
                        Location::new(file.clone(), node.line),
                        format!("`{key}` must be a string or a list"),
                    )
                    .with_key(key),
                );
                Vec::new()
            }
        }
    }

    pub(super) fn bool_node(&mut self, node: &Node, file: &Arc<str>, key: &str) -> bool {
        match &node.kind {
            NodeKind::Bool(b) => *b,
            NodeKind::Str(s) => match crate::args::to_bool(&Value::from(s.as_str())) {
                Some(b) => b,
                None => {
                    self.errors.push(
                        LoadError::at(
                            Location::new(file.clone(), node.line),
                            format!("`{key}` must be a boolean (templated values are not supported here)"),
                        )
                        .with_key(key),
                    );
                    false
                }
            },
            NodeKind::Int(i) => *i != 0,
            _ => {
                self.errors.push(
                    LoadError::at(
                        Location::new(file.clone(), node.line),
                        format!("`{key}` must be a boolean"),
                    )
                    .with_key(key),
                );
                false
            }
        }
    }
}
