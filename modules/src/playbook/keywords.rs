//! The keywords of plays, role entries, blocks and tasks, as ansible-core 2.19 defines them
//! (playbook/base.py, play.py, block.py, task.py, role/definition.py and their mixins), and
//! what each means here. docs/language/keywords.md is the user's view of the same table.

use std::sync::Arc;

use indexmap::IndexMap;

use super::*;
use crate::error::{LoadError, Location};
use crate::yaml::{Entry, Node, NodeKind};

/// `Base`: every play, role entry, block and task accepts these.
pub(super) const BASE_KEYS: &[&str] = &[
    "name",
    "connection",
    "port",
    "remote_user",
    "vars",
    "module_defaults",
    "environment",
    "no_log",
    "run_once",
    "ignore_errors",
    "ignore_unreachable",
    "check_mode",
    "diff",
    "any_errors_fatal",
    "throttle",
    "timeout",
    "debugger",
    "become",
    "become_method",
    "become_user",
    "become_flags",
    "become_exe",
];

/// A play's own keywords (with `Base`, `Taggable` and `CollectionSearch`).
pub(super) const PLAY_KEYS: &[&str] = &[
    "hosts",
    "gather_facts",
    "gather_subset",
    "gather_timeout",
    "fact_path",
    "vars_files",
    "vars_prompt",
    "roles",
    "handlers",
    "pre_tasks",
    "post_tasks",
    "tasks",
    "force_handlers",
    "max_fail_percentage",
    "serial",
    "strategy",
    "order",
    "tags",
    "collections",
];

/// Blocks and tasks: `Base` with `Conditional`, `Taggable` and `CollectionSearch`.
/// (`Notifiable` and `Delegatable` too: a block's `notify` is inherited by its tasks.)
pub(super) const COMMON_KEYS: &[&str] = &[
    "when",
    "tags",
    "collections",
    "notify",
    "delegate_to",
    "delegate_facts",
];

pub(super) const TASK_KEYS: &[&str] = &[
    "loop",
    "with_items",
    "with_list",
    "loop_control",
    "listen",
    "until",
    "retries",
    "delay",
    "register",
    "changed_when",
    "failed_when",
    "args",
    "async",
    "poll",
];

pub(super) const BLOCK_KEYS: &[&str] = &["block", "rescue", "always"];

pub(super) const LOOP_CONTROL_KEYS: &[&str] = &[
    "loop_var",
    "index_var",
    "label",
    "pause",
    "extended",
    "extended_allitems",
];

/// Whether `key` is a keyword of blocks and tasks alike.
pub(super) fn is_common_key(key: &str) -> bool {
    BASE_KEYS.contains(&key) || COMMON_KEYS.contains(&key)
}

/// What enclosing plays, role entries, blocks and imports pass down at load time: the
/// keywords that change how a task is loaded rather than how it runs.
#[derive(Debug, Clone, Default)]
pub(super) struct LoadScope {
    /// `module_defaults`, outermost first: (action name as written, its defaults).
    pub module_defaults: Vec<(String, Node, Arc<str>)>,
    /// `collections`, innermost first: where short role names are also looked for.
    pub collections: Vec<String>,
    /// `timeout` (the agent has no task timeout: a task under one fails when it runs).
    pub timeout: Option<Location>,
    /// The directory holding the role whose dependencies are being loaded: its siblings.
    pub role_basedir: Option<RepoPath>,
}

impl Loader<'_> {
    /// `Base`, `Conditional` and `Taggable` keywords of a play, role entry, block or task.
    /// Keywords that only change loading (`module_defaults`, `collections`, `timeout`) go to
    /// `scope`.
    pub(super) fn common(&mut self, entries: &[Entry], file: &Arc<str>) -> Common {
        let mut c = Common::default();
        for e in entries {
            let at = Location::new(file.clone(), e.key_line);
            match e.key.as_str() {
                "when" => c.when = self.conditions(&e.value, file, "when"),
                "tags" => c.tags = self.string_list(&e.value, file, "tags"),
                "vars" => c.vars = self.vars_map(&e.value, file),
                "ignore_errors" => c.ignore_errors = self.flag(&e.value, file, "ignore_errors"),
                "no_log" => c.no_log = self.flag(&e.value, file, "no_log"),
                "check_mode" => c.check_mode = self.flag(&e.value, file, "check_mode"),
                "diff" => c.diff = self.flag(&e.value, file, "diff"),
                "become" => c.become_ = self.flag(&e.value, file, "become"),
                "run_once" => c.run_once = self.flag(&e.value, file, "run_once"),
                "delegate_to" => c.delegate_to = Some(self.templated_scalar(&e.value, file)),
                "delegate_facts" => c.delegate_facts = Some(self.templated_scalar(&e.value, file)),
                "notify" => c.notify = Some(self.notify_list(&e.value, file)),
                // One host, never unreachable: only their syntax matters.
                "any_errors_fatal" => {
                    self.flag(&e.value, file, "any_errors_fatal");
                }
                "ignore_unreachable" => {
                    self.flag(&e.value, file, "ignore_unreachable");
                }
                "become_user" => {
                    self.check_templates(&e.value, file);
                    c.become_user = Some((e.value.to_value(), at));
                }
                "environment" => {
                    self.check_templates(&e.value, file);
                    c.environment = Some(e.value.to_value());
                }
                "connection" => self.check_connection(&e.value, file),
                "debugger" => self.check_debugger(&e.value, file),
                "throttle" | "port" | "remote_user" | "become_method" | "become_flags"
                | "become_exe" => self.check_templates(&e.value, file),
                _ => {}
            }
        }
        c
    }

    /// Pushes the loading keywords of `entries` (`module_defaults`, `collections`, `timeout`)
    /// for what is loaded inside them; returns the scope to restore afterwards.
    pub(super) fn push_scope(&mut self, entries: &[Entry], file: &Arc<str>) -> LoadScope {
        let saved = self.scope.clone();
        for e in entries {
            match e.key.as_str() {
                "module_defaults" => self.module_defaults(&e.value, file),
                "collections" => {
                    let mut names = self.string_list(&e.value, file, "collections");
                    names.extend(std::mem::take(&mut self.scope.collections));
                    self.scope.collections = names;
                }
                "timeout" => {
                    self.check_templates(&e.value, file);
                    if !matches!(e.value.kind, NodeKind::Int(0) | NodeKind::Null) {
                        self.scope.timeout = Some(Location::new(file.clone(), e.key_line));
                    }
                }
                _ => {}
            }
        }
        saved
    }

    fn module_defaults(&mut self, node: &Node, file: &Arc<str>) {
        let maps: Vec<&Node> = match &node.kind {
            NodeKind::Seq(items) => items.iter().collect(),
            NodeKind::Null => Vec::new(),
            _ => vec![node],
        };
        for m in maps {
            let Some(entries) = m.as_map() else {
                self.errors.push(
                    LoadError::at(
                        Location::new(file.clone(), m.line),
                        "`module_defaults` must be a mapping (or a list of mappings) of action \
                         names to their default arguments",
                    )
                    .with_key("module_defaults"),
                );
                continue;
            };
            for e in entries {
                if let Some(group) = e.key.strip_prefix("group/") {
                    // ansible-core's own groups are test fixtures; collections define the rest.
                    self.errors.push(
                        LoadError::at(
                            Location::new(file.clone(), e.key_line),
                            format!(
                                "module_defaults: action group `{group}` is not known to the \
                                 agent (name the modules instead)"
                            ),
                        )
                        .with_key(e.key.clone()),
                    );
                    continue;
                }
                self.check_templates(&e.value, file);
                self.scope
                    .module_defaults
                    .push((e.key.clone(), e.value.clone(), file.clone()));
            }
        }
    }

    /// The `module_defaults` in scope for the module `name`, as argument nodes, to add where
    /// the task does not set them. Err: a defaults value that is a template (not mergeable
    /// before it runs).
    pub(super) fn defaults_for(&self, name: &str) -> Result<Vec<(String, Node)>, LoadError> {
        let canonical = crate::modules::canonical_name(name);
        let mut out: IndexMap<String, Node> = IndexMap::new();
        for (key, defaults, file) in &self.scope.module_defaults {
            let matches = key == name
                || (canonical.is_some() && crate::modules::canonical_name(key) == canonical);
            if !matches {
                continue;
            }
            match &defaults.kind {
                NodeKind::Map(entries) => {
                    for e in entries {
                        out.insert(e.key.clone(), e.value.clone());
                    }
                }
                NodeKind::Null => {}
                _ => {
                    return Err(LoadError::at(
                        Location::new(file.clone(), defaults.line),
                        format!(
                            "module_defaults for `{key}` given as a template: the agent merges \
                             defaults before the task runs"
                        ),
                    )
                    .with_key(key.clone()))
                }
            }
        }
        Ok(out.into_iter().collect())
    }

    /// A loading keyword in scope that a dynamic include (loaded when it runs) would lose.
    pub(super) fn scope_for_dynamic(&self) -> Option<(&'static str, Location)> {
        if let Some((_, node, file)) = self.scope.module_defaults.first() {
            return Some(("module_defaults", Location::new(file.clone(), node.line)));
        }
        self.scope.timeout.clone().map(|l| ("timeout", l))
    }

    /// A boolean keyword: a literal, or a template kept for when the task runs.
    pub(super) fn flag(&mut self, node: &Node, file: &Arc<str>, key: &'static str) -> Option<Flag> {
        match &node.kind {
            NodeKind::Str(s) if Templar::is_template(s) => {
                self.check_templates(node, file);
                Some(Flag::Template {
                    text: s.clone(),
                    key,
                    location: Location::new(file.clone(), node.line),
                })
            }
            _ => Some(Flag::Literal(self.bool_node(node, file, key))),
        }
    }

    /// Only the local connection: the agent runs on the host it manages.
    fn check_connection(&mut self, node: &Node, file: &Arc<str>) {
        let local = matches!(
            node.as_str(),
            Some("local" | "ansible.builtin.local" | "ansible.legacy.local")
        );
        if !local {
            self.errors.push(
                LoadError::at(
                    Location::new(file.clone(), node.line),
                    "only `connection: local` is supported (the agent runs on the host it manages)",
                )
                .with_key("connection"),
            );
        }
    }

    /// `debugger`: accepted values; the agent never stops for a debugger (it is a daemon).
    fn check_debugger(&mut self, node: &Node, file: &Arc<str>) {
        const VALUES: &[&str] = &[
            "always",
            "never",
            "on_failed",
            "on_unreachable",
            "on_skipped",
        ];
        if !node.as_str().is_some_and(|v| VALUES.contains(&v)) {
            self.errors.push(
                LoadError::at(
                    Location::new(file.clone(), node.line),
                    format!("`debugger` must be one of: {}", VALUES.join(", ")),
                )
                .with_key("debugger"),
            );
        }
    }

    /// What in a task's keywords the agent does not implement, for the task to fail when it
    /// runs: `async` with `poll: 0` (fire and forget), a `timeout`.
    pub(super) fn unsupported_task_keywords(
        &mut self,
        node: &Node,
        file: &Arc<str>,
    ) -> Option<LoadError> {
        for key in ["async", "poll"] {
            if let Some(n) = node.get(key) {
                self.check_templates(n, file);
            }
        }
        let int = |key: &str| -> Option<Option<i64>> {
            let n = node.get(key)?;
            Some(match &n.kind {
                NodeKind::Int(i) => Some(*i),
                NodeKind::Str(s) => s.trim().parse().ok(),
                _ => None,
            })
        };
        let line = |key: &str| node.get(key).map(|n| n.line).unwrap_or(node.line);
        match (int("async"), int("poll")) {
            (Some(Some(a)), poll) if a > 0 && !matches!(poll, None | Some(Some(1..))) => {
                return Some(
                    LoadError::at(
                        Location::new(file.clone(), line("poll")),
                        "`async` with `poll: 0` (or a templated poll) is not supported: the \
                         agent runs each task to its end",
                    )
                    .with_key("poll"),
                );
            }
            (Some(None), _) => {
                return Some(
                    LoadError::at(
                        Location::new(file.clone(), line("async")),
                        "a templated `async` is not supported",
                    )
                    .with_key("async"),
                )
            }
            _ => {}
        }
        if let Some(n) = node.get("timeout") {
            self.check_templates(n, file);
            if !matches!(n.kind, NodeKind::Int(0) | NodeKind::Null) {
                return Some(timeout_error(Location::new(file.clone(), n.line)));
            }
        }
        self.scope.timeout.clone().map(timeout_error)
    }
}

fn timeout_error(at: Location) -> LoadError {
    LoadError::at(at, "a task `timeout` is not supported by the agent").with_key("timeout")
}
