//! A task's action: a module with its arguments (checked by the module's spec and
//! `validate`), an include or import, or a `meta` action.

use std::sync::Arc;

use minijinja::Value;

use super::*;
use crate::error::{LoadError, Location};
use crate::yaml::{Entry, Node, NodeKind};

/// Why a task file named by an include cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum IncludeError {
    #[error("includes nested too deeply (a loop?)")]
    TooDeep,
    #[error(transparent)]
    Escape(#[from] crate::source::EscapeError),
    #[error("task file `{0}` not found")]
    NotFound(String),
}

impl Loader<'_> {
    pub(super) fn action(
        &mut self,
        entry: &Entry,
        args_kw: Option<&Node>,
        file: &Arc<str>,
        role: Option<Arc<Role>>,
        at: &Location,
        handler: bool,
    ) -> Option<Action> {
        let name = entry.key.as_str();
        let short = name
            .strip_prefix("ansible.builtin.")
            .or_else(|| name.strip_prefix("ansible.legacy."))
            .unwrap_or(name);
        match short {
            "action" | "local_action" => {
                // `local_action` runs on the controller, which is this host (ansible-pull).
                let inner = self.action_keyword(entry, file)?;
                self.action(&inner, args_kw, file, role, at, handler)
            }
            "meta" => self.meta_action(entry, at, role.is_some(), handler),
            "import_tasks" | "include_tasks" => {
                self.include_tasks_action(entry, short, file, role, at, handler)
            }
            "import_role" | "include_role" => self.include_role_action(entry, short, file, at),
            _ => self.module_action(entry, args_kw, file, role, at),
        }
    }

    /// `action:`/`local_action:` as the action they name: `copy src=a dest=b`, or a mapping
    /// with `module` and the arguments.
    pub(super) fn action_keyword(&mut self, entry: &Entry, file: &Arc<str>) -> Option<Entry> {
        let line = entry.value.line;
        let found = match &entry.value.kind {
            NodeKind::Str(text) => {
                let text = text.trim_start();
                let (name, rest) = text.split_once(char::is_whitespace).unwrap_or((text, ""));
                let rest = rest.trim();
                let value = if rest.is_empty() {
                    NodeKind::Null
                } else {
                    NodeKind::Str(rest.to_string())
                };
                Some((name.to_string(), Node::new(value, line)))
            }
            NodeKind::Map(entries) => {
                let name = entries
                    .iter()
                    .find(|e| e.key == "module")
                    .and_then(|e| e.value.as_str())
                    .map(str::to_string);
                let rest: Vec<Entry> = entries
                    .iter()
                    .filter(|e| e.key != "module")
                    .cloned()
                    .collect();
                name.map(|n| (n, Node::new(NodeKind::Map(rest), line)))
            }
            _ => None,
        };
        match found {
            Some((name, value)) if !name.is_empty() && !Templar::is_template(&name) => {
                Some(Entry {
                    key: name,
                    key_line: entry.key_line,
                    value,
                })
            }
            _ => {
                self.errors.push(
                    LoadError::at(
                        Location::new(file.clone(), entry.key_line),
                        format!(
                            "`{}` needs a module name: `copy src=a dest=b` or a mapping with                              `module`",
                            entry.key
                        ),
                    )
                    .with_key(entry.key.clone()),
                );
                None
            }
        }
    }

    /// `meta: ACTION`, every action ansible-core 2.19 has. `end_role` only inside a role and
    /// not in a handler (ansible-core refuses it at load too).
    fn meta_action(
        &mut self,
        entry: &Entry,
        at: &Location,
        in_role: bool,
        handler: bool,
    ) -> Option<Action> {
        let name = entry.value.as_str().map(str::trim);
        let action = match name {
            Some("flush_handlers") => Action::FlushHandlers,
            Some("noop") => Action::MetaNoop("noop".to_string()),
            Some("end_host") => Action::Meta(Meta::EndHost),
            Some("end_play") => Action::Meta(Meta::EndPlay),
            Some("end_batch") => Action::Meta(Meta::EndBatch),
            Some("end_role") => Action::Meta(Meta::EndRole),
            Some("clear_facts") => Action::Meta(Meta::ClearFacts),
            Some("clear_host_errors") => Action::Meta(Meta::ClearHostErrors),
            Some("reset_connection") => Action::Meta(Meta::ResetConnection),
            Some("refresh_inventory") => Action::Meta(Meta::RefreshInventory),
            Some("role_complete") => Action::Meta(Meta::RoleComplete),
            other => {
                self.errors.push(
                    LoadError::at(
                        at.clone(),
                        format!(
                            "invalid meta action requested: {} (ansible-core 2.19 has: \
                             clear_facts, clear_host_errors, end_batch, end_host, end_play, \
                             end_role, flush_handlers, noop, refresh_inventory, \
                             reset_connection, role_complete)",
                            other.unwrap_or("?")
                        ),
                    )
                    .with_key("meta"),
                );
                return None;
            }
        };
        let refused = match action {
            Action::Meta(Meta::EndRole) if handler => {
                Some("Cannot execute 'end_role' from a handler")
            }
            Action::Meta(Meta::EndRole) if !in_role => {
                Some("Cannot execute 'end_role' from outside of a role")
            }
            _ => None,
        };
        if let Some(msg) = refused {
            self.errors
                .push(LoadError::at(at.clone(), msg).with_key("meta"));
            return None;
        }
        Some(action)
    }

    /// `include_tasks`/`import_tasks`: an import is loaded now; an include with a static name
    /// too (for its errors), else when it runs. Under `handlers:` the file's tasks are handlers
    /// (`listen` allowed).
    fn include_tasks_action(
        &mut self,
        entry: &Entry,
        short: &str,
        file: &Arc<str>,
        role: Option<Arc<Role>>,
        at: &Location,
        handler: bool,
    ) -> Option<Action> {
        let (file_name, extra) = self.include_target(&entry.value, file, short)?;
        if let Some(k) = extra.first() {
            let e = LoadError::at(at.clone(), format!("unsupported `{short}` argument `{k}`"))
                .with_key(short);
            return self.unsupported(short, e);
        }
        let static_name = file_name.as_str().filter(|s| !Templar::is_template(s));
        let dir = RepoPath::new(file).map(|p| p.parent()).unwrap_or_default();
        let resolve = |this: &Self, n: &str| this.resolve_task_file(n, &dir, role.as_ref());
        if short == "import_tasks" {
            let Some(n) = static_name else {
                self.errors.push(
                    LoadError::at(at.clone(), "`import_tasks` needs a static file name")
                        .with_key(short),
                );
                return None;
            };
            let path = match resolve(self, n) {
                Ok(p) => p,
                Err(e) => {
                    self.errors
                        .push(LoadError::at(at.clone(), e.to_string()).with_key(short));
                    return None;
                }
            };
            let items = self.nested(|this| this.task_file(&path, role.clone(), handler));
            // An import is its tasks, in place: represented as an unnamed block.
            return Some(Action::IncludeTasks {
                file: Value::from(n),
                preloaded: Some(items),
                import: true,
            });
        }
        if static_name.is_none() {
            // Loaded when it runs, without the loading keywords around it: refuse them then.
            if let Some((key, at)) = self.scope_for_dynamic() {
                let e = LoadError::at(
                    at,
                    format!("`{key}` around an `include_tasks` of a templated file name is not supported"),
                )
                .with_key(key);
                return self.unsupported(short, e);
            }
        }
        let preloaded = match static_name {
            Some(n) => match resolve(self, n) {
                Ok(path) => Some(self.nested(|this| this.task_file(&path, role.clone(), handler))),
                Err(e) => {
                    self.errors
                        .push(LoadError::at(at.clone(), e.to_string()).with_key(short));
                    return None;
                }
            },
            None => None,
        };
        Some(Action::IncludeTasks {
            file: file_name,
            preloaded,
            import: false,
        })
    }

    /// `include_role`/`import_role` with `name` and `tasks_from`.
    fn include_role_action(
        &mut self,
        entry: &Entry,
        short: &str,
        file: &Arc<str>,
        at: &Location,
    ) -> Option<Action> {
        let Some(map) = entry.value.as_map() else {
            self.errors
                .push(LoadError::at(at.clone(), format!("`{short}` needs `name`")).with_key(short));
            return None;
        };
        let mut role_name = None;
        let mut tasks_from = None;
        let mut unsupported = None;
        for e in map {
            match e.key.as_str() {
                "name" => role_name = e.value.as_str().map(str::to_string),
                "tasks_from" => tasks_from = e.value.as_str().map(str::to_string),
                k => {
                    self.check_templates(&e.value, file);
                    unsupported.get_or_insert_with(|| {
                        LoadError::at(
                            Location::new(file.clone(), e.key_line),
                            format!(
                                "unsupported `{short}` argument `{k}` (supported: name, tasks_from)"
                            ),
                        )
                        .with_key(k)
                    });
                }
            }
        }
        if let Some(e) = unsupported {
            return self.unsupported(short, e);
        }
        let Some(role_name) = role_name else {
            self.errors
                .push(LoadError::at(at.clone(), format!("`{short}` needs `name`")).with_key(short));
            return None;
        };
        if Templar::is_template(&role_name) {
            self.check_templates(&entry.value, file);
            let e = LoadError::at(at.clone(), "templated role names are not supported")
                .with_key("name");
            return self.unsupported(short, e);
        }
        let role = self
            .nested(|this| this.load_role(&role_name, tasks_from.as_deref(), RawVars::new(), at))?;
        let role = super::role::inline_dependencies(role, at);
        Some(Action::IncludeRole {
            name: role_name,
            tasks_from,
            role,
            import: short == "import_role",
        })
    }

    /// A module with its arguments: free-form text, a mapping and `args`, checked by the
    /// module's spec and its own `validate`.
    fn module_action(
        &mut self,
        entry: &Entry,
        args_kw: Option<&Node>,
        file: &Arc<str>,
        role: Option<Arc<Role>>,
        at: &Location,
    ) -> Option<Action> {
        let name = entry.key.as_str();
        let Some(module) = modules::lookup(name) else {
            // Still a syntax check of its templates: only what is not implemented waits.
            self.check_templates(&entry.value, file);
            let e =
                LoadError::at(at.clone(), format!("unsupported module `{name}`")).with_key(name);
            let call = self.bridge_call(entry, args_kw, name);
            return self.unsupported_module(name, e, call);
        };
        let spec = module.spec();
        let mut pairs: Vec<(String, Node)> = Vec::new();
        match &entry.value.kind {
            NodeKind::Map(entries) => {
                for e in entries {
                    pairs.push((e.key.clone(), e.value.clone()));
                }
            }
            NodeKind::Str(text) => match parse_kv(text, spec.free_form) {
                Ok(kv) => {
                    for (k, v) in kv {
                        // k=v values are text; YAML-typed only as Ansible does (no type change).
                        pairs.push((k, Node::new(NodeKind::Str(v), entry.value.line)));
                    }
                }
                Err(e) => {
                    self.errors
                        .push(LoadError::at(at.clone(), e.to_string()).with_key(name.to_string()));
                    return None;
                }
            },
            NodeKind::Null => {}
            _ => {
                self.errors.push(
                    LoadError::at(
                        at.clone(),
                        format!("arguments of `{name}` must be a mapping or key=value text"),
                    )
                    .with_key(name.to_string()),
                );
                return None;
            }
        }
        if let Some(args) = args_kw {
            match args.as_map() {
                Some(entries) => {
                    for e in entries {
                        pairs.push((e.key.clone(), e.value.clone()));
                    }
                }
                None => self.errors.push(
                    LoadError::at(
                        Location::new(file.clone(), args.line),
                        "`args` must be a mapping",
                    )
                    .with_key("args"),
                ),
            }
        }
        // module_defaults in scope: for the arguments the task does not set.
        match self.defaults_for(name) {
            Ok(defaults) => {
                for (k, v) in defaults {
                    if !pairs.iter().any(|(pk, _)| *pk == k) {
                        pairs.push((k, v));
                    }
                }
            }
            Err(e) => return self.unsupported(name, e),
        }
        let short_name = modules::canonical_name(name).unwrap_or("?");
        let search = search_dirs(role.as_ref(), file, &self.base);
        let ctx = LoadContext {
            source: self.source,
            templar: self.templar,
            file,
            task: at,
            search: &search,
        };
        let task_args = TaskArgs { pairs: &pairs };
        if let Some(errors) = module.check_free_args(&task_args, &ctx) {
            self.errors.extend(errors);
            for (_, v) in &pairs {
                self.check_templates(v, file);
            }
        } else if let Some(e) = unknown_argument(spec, &pairs, file) {
            // An argument the module does not know (Ansible's may, or a newer one): the task
            // fails when it runs.
            for (_, v) in &pairs {
                self.check_templates(v, file);
            }
            let call = crate::bridge::ModuleCall {
                module: name.to_string(),
                args: pairs
                    .iter()
                    .map(|(k, v)| (k.clone(), v.to_value()))
                    .collect(),
            };
            return self.unsupported_module(name, e, Some(call));
        } else if let Err(e) = spec.validate(&pairs, file, self.templar) {
            self.errors.push(e);
        } else if let Err(e) = spec.validate_groups(&pairs, file) {
            // Missing or conflicting arguments are bad input: refused before anything runs.
            self.errors.push(e);
        } else {
            for (_, v) in &pairs {
                self.check_templates(v, file);
            }
            if let Err(e) = module.validate(&task_args, &ctx) {
                self.errors.push(e);
            }
        }
        Some(Action::Module {
            name: short_name,
            written: name.to_string(),
            module,
            args: pairs.into_iter().map(|(k, v)| (k, v.to_value())).collect(),
        })
    }

    /// A task the agent does not implement: loading goes on; the task fails with `error` only
    /// when it runs.
    pub(super) fn unsupported(&mut self, written: &str, error: LoadError) -> Option<Action> {
        self.unsupported_module(written, error, None)
    }

    /// As [`Self::unsupported`], for a module task that the bridge to ansible-core can run
    /// (`call`), unless its module is one the bridge always refuses.
    fn unsupported_module(
        &mut self,
        written: &str,
        error: LoadError,
        call: Option<crate::bridge::ModuleCall>,
    ) -> Option<Action> {
        self.warnings.push(error.clone());
        if let Some(c) = &call {
            if crate::bridge::plugins::refused_at_load(&c.module, &c.args).is_none() {
                self.bridgeable.push((error.clone(), c.module.clone()));
            }
        }
        Some(Action::Unsupported {
            written: written.to_string(),
            error,
            call,
        })
    }

    /// The arguments of a module the agent does not have, as Ansible reads them: a mapping,
    /// or `key=value` text (no free form: that is for the modules that take one), then `args`
    /// and `module_defaults`. `None` when they cannot be read so (the task stays unsupported).
    fn bridge_call(
        &self,
        entry: &Entry,
        args_kw: Option<&Node>,
        name: &str,
    ) -> Option<crate::bridge::ModuleCall> {
        let mut pairs: Vec<(String, Node)> = Vec::new();
        match &entry.value.kind {
            NodeKind::Map(entries) => {
                for e in entries {
                    pairs.push((e.key.clone(), e.value.clone()));
                }
            }
            NodeKind::Str(text) => {
                for (k, v) in parse_kv(text, false).ok()? {
                    pairs.push((k, Node::new(NodeKind::Str(v), entry.value.line)));
                }
            }
            NodeKind::Null => {}
            _ => return None,
        }
        if let Some(args) = args_kw {
            for e in args.as_map()? {
                pairs.push((e.key.clone(), e.value.clone()));
            }
        }
        for (k, v) in self.defaults_for(name).ok()? {
            if !pairs.iter().any(|(pk, _)| *pk == k) {
                pairs.push((k, v));
            }
        }
        Some(crate::bridge::ModuleCall {
            module: name.to_string(),
            args: pairs.into_iter().map(|(k, v)| (k, v.to_value())).collect(),
        })
    }

    pub(super) fn nested<T>(&mut self, f: impl FnOnce(&mut Self) -> T) -> T {
        self.depth += 1;
        let out = f(self);
        self.depth -= 1;
        out
    }

    /// A task file named by an include: relative to the including file, then the role's
    /// `tasks/`, then the playbook's directory (Ansible's search order).
    pub(super) fn resolve_task_file(
        &self,
        name: &str,
        dir: &RepoPath,
        role: Option<&Arc<Role>>,
    ) -> Result<RepoPath, IncludeError> {
        if self.depth > 20 {
            return Err(IncludeError::TooDeep);
        }
        // An absolute path into the repository (`role_path`, a `first_found` result).
        if let Some(rel) = crate::source::repo_relative(self.source, name) {
            let p = RepoPath::new(rel)?;
            return match self.source.kind(&p) {
                Ok(Some(crate::source::SourceKind::File)) => Ok(p),
                _ => Err(IncludeError::NotFound(name.to_string())),
            };
        }
        let mut candidates = vec![dir.join(name)];
        if let Some(r) = role {
            candidates.push(r.path.join(&format!("tasks/{name}")));
        }
        candidates.push(self.base.join(name));
        let mut escape = None;
        for c in candidates {
            match c {
                Ok(p) => {
                    if let Ok(Some(crate::source::SourceKind::File)) = self.source.kind(&p) {
                        return Ok(p);
                    }
                }
                Err(e) => escape = Some(e),
            }
        }
        Err(match escape {
            Some(e) => IncludeError::Escape(e),
            None => IncludeError::NotFound(name.to_string()),
        })
    }

    pub(super) fn include_target(
        &mut self,
        node: &Node,
        file: &Arc<str>,
        key: &str,
    ) -> Option<(Value, Vec<String>)> {
        let found = match &node.kind {
            NodeKind::Str(s) => Some((Value::from(s.as_str()), Vec::new())),
            NodeKind::Map(entries) => {
                let mut name = None;
                let mut extra = Vec::new();
                for e in entries {
                    match e.key.as_str() {
                        "file" | "_raw_params" => name = Some(e.value.to_value()),
                        k => extra.push(k.to_string()),
                    }
                }
                name.map(|n| (n, extra))
            }
            _ => None,
        };
        if found.is_none() {
            self.errors.push(
                LoadError::at(
                    Location::new(file.clone(), node.line),
                    format!("`{key}` needs a file name"),
                )
                .with_key(key),
            );
        }
        found
    }
}

/// The first argument `spec` does not know, as an error naming its line and key.
fn unknown_argument(
    spec: &crate::args::ArgSpec,
    pairs: &[(String, Node)],
    file: &Arc<str>,
) -> Option<LoadError> {
    let (k, node) = pairs
        .iter()
        .find(|(k, _)| k != crate::args::RAW_PARAMS && spec.find(k).is_none())?;
    let mut names: Vec<&str> = spec.args.iter().map(|d| d.name).collect();
    names.sort_unstable();
    Some(
        LoadError::at(
            Location::new(file.clone(), node.line),
            format!(
                "unsupported argument `{k}` for module `{}` (supported: {})",
                spec.module,
                names.join(", ")
            ),
        )
        .with_key(k.clone()),
    )
}

#[cfg(test)]
mod tests {
    use crate::playbook::Loader;
    use crate::source::{DirSource, RepoPath};
    use crate::template::Templar;

    /// Loads `site.yml` with these tasks beside `files`; the error text, or "" when it loads.
    fn load(tasks: &str, files: &[(&str, &str)]) -> String {
        let dir = tempfile::tempdir().unwrap();
        let playbook = format!("- hosts: all\n  tasks:\n{tasks}");
        std::fs::write(dir.path().join("site.yml"), playbook).unwrap();
        for (name, text) in files {
            let path = dir.path().join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        let source = DirSource::new(dir.path()).unwrap();
        let templar = Templar::new();
        match Loader::new(&source, &templar).load(
            &RepoPath::new("site.yml").unwrap(),
            &crate::inventory::InventoryHost::implicit("h"),
        ) {
            Ok(_) => String::new(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn modules_validate_their_literal_arguments_at_load() {
        let e = load("    - copy: {src: nope.txt, dest: /tmp/x}\n", &[]);
        assert!(
            e.contains("src `nope.txt` not found (searched files/"),
            "{e}"
        );
        assert_eq!(
            load(
                "    - copy: {src: here.txt, dest: /tmp/x}\n",
                &[("files/here.txt", "x")]
            ),
            ""
        );
        // Not checked: a template name, or a file on the host.
        assert_eq!(load("    - copy: {src: '{{ f }}', dest: /x}\n", &[]), "");
        assert_eq!(
            load(
                "    - copy: {src: /etc/hosts, dest: /x, remote_src: true}\n",
                &[]
            ),
            ""
        );
        let e = load(
            "    - template: {src: t.j2, dest: /tmp/x}\n",
            &[("templates/t.j2", "{% if %}")],
        );
        assert!(e.contains("template templates/t.j2:"), "{e}");
        let e = load(
            "    - authorized_key: {user: a, key: 'https://example.org/a.keys'}\n",
            &[],
        );
        assert!(e.contains("fetching keys from a URL"), "{e}");
        let e = load("    - group: {name: g, non_unique: true}\n", &[]);
        assert!(
            e.contains("non_unique is True but all of the following are missing: gid"),
            "{e}"
        );
        assert_eq!(
            load("    - group: {name: g, non_unique: true, gid: 5}\n", &[]),
            ""
        );
    }

    #[test]
    fn set_fact_checks_its_variable_names() {
        let e = load("    - set_fact: {1x: a, ok: '{{ b }}'}\n", &[]);
        assert!(e.contains("`1x` is not a valid variable name"), "{e}");
        let e = load("    - set_fact: {}\n", &[]);
        assert!(e.contains("`set_fact` needs at least one variable"), "{e}");
        let e = load("    - set_fact: {a: '{{ b'}\n", &[]);
        assert!(!e.is_empty(), "a template that does not parse");
        assert_eq!(load("    - set_fact: {a: 1, cacheable: true}\n", &[]), "");
        // A templated name is rendered when the task runs; its syntax is checked now.
        assert_eq!(load("    - set_fact: {'{{ n }}_x': 1}\n", &[]), "");
        let e = load("    - set_fact: {'{{ n': 1}\n", &[]);
        assert!(e.contains("template error"), "{e}");
    }

    #[test]
    fn meta_actions_load_as_ansible_core_allows() {
        for ok in [
            "end_host",
            "end_play",
            "end_batch",
            "clear_facts",
            "clear_host_errors",
            "reset_connection",
            "refresh_inventory",
            "role_complete",
            "noop",
            "flush_handlers",
        ] {
            assert_eq!(load(&format!("    - meta: {ok}\n"), &[]), "", "{ok}");
        }
        let e = load("    - meta: end_role\n", &[]);
        assert!(
            e.contains("Cannot execute 'end_role' from outside of a role"),
            "{e}"
        );
        let e = load("    - meta: stop_everything\n", &[]);
        assert!(
            e.contains("invalid meta action requested: stop_everything"),
            "{e}"
        );
    }
}
