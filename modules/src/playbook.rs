//! Loading a playbook: plays, roles, task files, variables files — every file parsed and every
//! task validated before anything runs. What is not supported is refused here, naming file,
//! line and key.

use std::sync::Arc;

use indexmap::IndexMap;
use minijinja::Value;

use crate::args::parse_kv;
use crate::error::{LoadError, LoadErrors, Location};
use crate::host::HostQueries;
use crate::modules;
use crate::resource::{LoadContext, Module, TaskArgs};
use crate::source::{RepoPath, Source};
use crate::template::Templar;
use crate::yaml::{self, Entry, Node, NodeKind};

/// Variables as written (templates inside are rendered lazily, when used).
pub type RawVars = IndexMap<String, Value>;

#[derive(Debug)]
pub struct Playbook {
    pub file: RepoPath,
    pub plays: Vec<Play>,
    /// `group_vars/all.yml` beside the playbook.
    pub group_vars: RawVars,
    /// `host_vars/<inventory hostname>.yml` beside the playbook.
    pub host_vars: RawVars,
}

#[derive(Debug)]
pub struct Play {
    pub name: String,
    pub hosts: Vec<String>,
    pub gather_facts: bool,
    pub vars: RawVars,
    pub vars_files: RawVars,
    pub roles: Vec<Arc<Role>>,
    pub pre_tasks: Vec<Item>,
    /// The tasks of `roles:`, then `tasks:`.
    pub tasks: Vec<Item>,
    pub post_tasks: Vec<Item>,
    pub handlers: Vec<Item>,
    pub tags: Vec<String>,
    pub location: Location,
}

/// A role as loaded for one use: its files, its variables and the parameters it was given.
#[derive(Debug)]
pub struct Role {
    pub name: String,
    pub path: RepoPath,
    pub defaults: RawVars,
    pub vars: RawVars,
    pub params: RawVars,
    pub tasks: Vec<Item>,
    pub handlers: Vec<Item>,
}

#[derive(Debug, Clone)]
pub enum Item {
    Task(Arc<Task>),
    Block(Arc<Block>),
}

/// Keywords shared by tasks and blocks, inherited from enclosing blocks.
#[derive(Debug, Clone, Default)]
pub struct Common {
    pub when: Vec<Value>,
    pub tags: Vec<String>,
    pub vars: RawVars,
    pub ignore_errors: Option<bool>,
    pub no_log: Option<bool>,
    pub environment: Option<Value>,
    pub check_mode: Option<bool>,
}

#[derive(Debug)]
pub struct Block {
    pub name: Option<String>,
    pub common: Common,
    pub block: Vec<Item>,
    pub rescue: Vec<Item>,
    pub always: Vec<Item>,
    pub role: Option<Arc<Role>>,
    pub location: Location,
}

#[derive(Debug)]
pub struct Task {
    pub name: Option<String>,
    pub action: Action,
    pub common: Common,
    pub loop_items: Option<Loop>,
    pub loop_var: String,
    pub index_var: Option<String>,
    pub label: Option<Value>,
    pub notify: Vec<String>,
    pub listen: Vec<String>,
    pub register: Option<String>,
    pub changed_when: Option<Vec<Value>>,
    pub failed_when: Option<Vec<Value>>,
    /// The role the task came from (for `files/`, `templates/` and role variables).
    pub role: Option<Arc<Role>>,
    pub location: Location,
}

#[derive(Debug, Clone)]
pub struct Loop {
    pub items: Value,
    /// `with_items` flattens one level of nested lists; `loop` does not.
    pub flatten: bool,
}

#[derive(Debug)]
pub enum Action {
    Module {
        /// The short name (`copy`).
        name: &'static str,
        /// The name as written in the task (`ansible.builtin.copy`): unnamed tasks show it.
        written: String,
        module: &'static dyn Module,
        args: IndexMap<String, Value>,
    },
    /// `include_tasks`: the file is read when the task runs (its name may be a template); when
    /// the name is static it is also loaded and validated up front.
    IncludeTasks {
        file: Value,
        preloaded: Option<Vec<Item>>,
        /// `import_tasks`: run in place, without an "included" result of its own.
        import: bool,
    },
    IncludeRole {
        name: String,
        tasks_from: Option<String>,
        role: Arc<Role>,
        import: bool,
    },
    FlushHandlers,
    /// `meta: noop` and the like that do nothing here.
    MetaNoop(String),
}

impl std::fmt::Debug for dyn Module {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.spec().module)
    }
}

impl Task {
    /// The module's short name, or the keyword (`include_tasks`, `meta`).
    pub fn action_name(&self) -> &str {
        match &self.action {
            Action::Module { name, .. } => name,
            Action::IncludeTasks { .. } => "include_tasks",
            Action::IncludeRole { .. } => "include_role",
            Action::FlushHandlers | Action::MetaNoop(_) => "meta",
        }
    }

    /// The name shown for the task, as Ansible shows it (the action when it has no name).
    pub fn display_name(&self) -> String {
        let base = match &self.name {
            Some(n) => n.clone(),
            None => match &self.action {
                Action::Module { written, .. } => written.clone(),
                other => match other {
                    Action::IncludeTasks { .. } => "include_tasks".into(),
                    Action::IncludeRole { .. } => "include_role".into(),
                    _ => "meta".into(),
                },
            },
        };
        match &self.role {
            Some(role) if self.name.is_some() => format!("{} : {}", role.name, base),
            _ => base,
        }
    }
}

const PLAY_KEYS: &[&str] = &[
    "hosts",
    "name",
    "vars",
    "vars_files",
    "roles",
    "pre_tasks",
    "tasks",
    "post_tasks",
    "handlers",
    "gather_facts",
    "become",
    "become_user",
    "become_method",
    "tags",
    "connection",
];

const COMMON_KEYS: &[&str] = &[
    "name",
    "when",
    "tags",
    "vars",
    "ignore_errors",
    "no_log",
    "become",
    "become_user",
    "become_method",
    "environment",
    "check_mode",
];

const TASK_KEYS: &[&str] = &[
    "loop",
    "with_items",
    "with_list",
    "loop_control",
    "notify",
    "listen",
    "register",
    "changed_when",
    "failed_when",
    "args",
];

const BLOCK_KEYS: &[&str] = &["block", "rescue", "always"];

const LOOP_CONTROL_KEYS: &[&str] = &["loop_var", "index_var", "label"];

/// Reads a playbook and everything it refers to from `source`.
pub struct Loader<'a> {
    source: &'a dyn Source,
    templar: &'a Templar,
    /// The directory the playbook is in: roles, vars files and `files/` are found from here.
    base: RepoPath,
    errors: Vec<LoadError>,
    /// Depth of nested imports, against import loops.
    depth: usize,
}

impl<'a> Loader<'a> {
    pub fn new(source: &'a dyn Source, templar: &'a Templar) -> Loader<'a> {
        Loader {
            source,
            templar,
            base: RepoPath::root(),
            errors: Vec::new(),
            depth: 0,
        }
    }

    /// Loads and validates the playbook at `file` for the host known as `inventory_hostname`.
    /// All errors found are returned together.
    pub fn load(
        mut self,
        file: &RepoPath,
        inventory_hostname: &str,
    ) -> Result<Playbook, LoadErrors> {
        self.base = file.parent();
        let root = self.parse_file(file).map_err(LoadErrors::from)?;
        let fname: Arc<str> = Arc::from(file.as_str());
        let group_vars = self.optional_vars_file(&["group_vars/all.yml", "group_vars/all.yaml"]);
        let host_vars = self.optional_vars_file(&[
            &format!("host_vars/{inventory_hostname}.yml"),
            &format!("host_vars/{inventory_hostname}.yaml"),
        ]);
        let mut plays = Vec::new();
        match &root.kind {
            NodeKind::Seq(items) => {
                for item in items {
                    if let Some(play) = self.play(item, &fname) {
                        plays.push(play);
                    }
                }
            }
            NodeKind::Null => {}
            _ => self.errors.push(LoadError::at(
                Location::new(fname.clone(), root.line),
                "a playbook must be a list of plays",
            )),
        }
        if !self.errors.is_empty() {
            return Err(LoadErrors(self.errors));
        }
        Ok(Playbook {
            file: file.clone(),
            plays,
            group_vars,
            host_vars,
        })
    }

    fn parse_file(&self, path: &RepoPath) -> Result<Node, LoadError> {
        let fname: Arc<str> = Arc::from(path.as_str());
        let bytes = self
            .source
            .read(path)
            .map_err(|e| LoadError::new(e.to_string()))?
            .ok_or_else(|| LoadError::new(format!("{path}: no such file")))?;
        let text = String::from_utf8(bytes)
            .map_err(|_| LoadError::at(Location::new(fname.clone(), 1), "not UTF-8 text"))?;
        yaml::parse(&fname, &text)
    }

    fn optional_vars_file(&mut self, candidates: &[&str]) -> RawVars {
        for c in candidates {
            let Ok(path) = self.base.join(c) else {
                continue;
            };
            if let Ok(Some(_)) = self.source.kind(&path) {
                return self.vars_file(&path, None);
            }
        }
        RawVars::new()
    }

    fn vars_file(&mut self, path: &RepoPath, at: Option<&Location>) -> RawVars {
        match self.parse_file(path) {
            Ok(node) => self.vars_map(&node, &Arc::from(path.as_str())),
            Err(mut e) => {
                if e.location.is_none() {
                    e.location = at.cloned();
                }
                self.errors.push(e);
                RawVars::new()
            }
        }
    }

    fn vars_map(&mut self, node: &Node, file: &Arc<str>) -> RawVars {
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
    fn check_templates(&mut self, node: &Node, file: &Arc<str>) {
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

    fn check_expr(&mut self, node: &Node, file: &Arc<str>, key: &str) {
        if let NodeKind::Str(s) = &node.kind {
            let res = if Templar::is_template(s) {
                self.templar.check_syntax(s)
            } else {
                self.templar.check_expr_syntax(s)
            };
            if let Err(e) = res {
                self.errors.push(
                    LoadError::at(
                        Location::new(file.clone(), node.line),
                        format!("invalid condition: {e}"),
                    )
                    .with_key(key),
                );
            }
        }
    }

    fn play(&mut self, node: &Node, file: &Arc<str>) -> Option<Play> {
        let loc = Location::new(file.clone(), node.line);
        let Some(entries) = node.as_map() else {
            self.errors
                .push(LoadError::at(loc, "a play must be a mapping"));
            return None;
        };
        if let Some(e) = entries.iter().find(|e| e.key == "import_playbook") {
            self.errors.push(
                LoadError::at(
                    Location::new(file.clone(), e.key_line),
                    "`import_playbook` is not supported",
                )
                .with_key("import_playbook"),
            );
            return None;
        }
        for e in entries {
            if !PLAY_KEYS.contains(&e.key.as_str()) {
                self.errors.push(
                    LoadError::at(
                        Location::new(file.clone(), e.key_line),
                        format!("unsupported play keyword `{}`", e.key),
                    )
                    .with_key(e.key.clone()),
                );
            }
        }
        let hosts = match node.get("hosts") {
            Some(h) => self.string_list(h, file, "hosts"),
            None => {
                self.errors
                    .push(LoadError::at(loc.clone(), "a play needs `hosts`").with_key("hosts"));
                Vec::new()
            }
        };
        self.check_become(entries, file);
        if let Some(c) = node.get("connection") {
            if c.as_str() != Some("local") {
                self.errors.push(
                    LoadError::at(
                        Location::new(file.clone(), c.line),
                        "only `connection: local` is supported",
                    )
                    .with_key("connection"),
                );
            }
        }
        let name = node
            .get("name")
            .and_then(|n| n.as_str())
            .map(str::to_string)
            .unwrap_or_else(|| hosts.join(","));
        let gather_facts = node
            .get("gather_facts")
            .map(|n| self.bool_node(n, file, "gather_facts"))
            .unwrap_or(true);
        let vars = node
            .get("vars")
            .map(|n| self.vars_map(n, file))
            .unwrap_or_default();
        let mut vars_files = RawVars::new();
        if let Some(vf) = node.get("vars_files") {
            for name in self.string_list(vf, file, "vars_files") {
                let at = Location::new(file.clone(), vf.line);
                if Templar::is_template(&name) {
                    self.errors.push(
                        LoadError::at(at, "templated `vars_files` names are not supported")
                            .with_key("vars_files"),
                    );
                    continue;
                }
                match self.base.join(&name) {
                    Ok(p) => {
                        let vars = self.vars_file(&p, Some(&at));
                        vars_files.extend(vars);
                    }
                    Err(e) => self
                        .errors
                        .push(LoadError::at(at, e.to_string()).with_key("vars_files")),
                }
            }
        }
        let tags = node
            .get("tags")
            .map(|t| self.string_list(t, file, "tags"))
            .unwrap_or_default();
        let mut roles = Vec::new();
        if let Some(r) = node.get("roles") {
            match r.as_seq() {
                Some(items) => {
                    for item in items {
                        if let Some(role) = self.role_ref(item, file) {
                            roles.push(role);
                        }
                    }
                }
                None => self.errors.push(
                    LoadError::at(
                        Location::new(file.clone(), r.line),
                        "`roles` must be a list",
                    )
                    .with_key("roles"),
                ),
            }
        }
        let pre_tasks = self.task_list_key(node, "pre_tasks", file, None, false);
        let mut tasks: Vec<Item> = Vec::new();
        let mut handlers: Vec<Item> = Vec::new();
        for (role, extra) in &roles {
            tasks.push(Item::Block(Arc::new(Block {
                name: None,
                common: extra.clone(),
                block: role.tasks.clone(),
                rescue: Vec::new(),
                always: Vec::new(),
                role: Some(role.clone()),
                location: loc.clone(),
            })));
            handlers.extend(role.handlers.iter().cloned());
        }
        tasks.extend(self.task_list_key(node, "tasks", file, None, false));
        let post_tasks = self.task_list_key(node, "post_tasks", file, None, false);
        handlers.extend(self.task_list_key(node, "handlers", file, None, true));
        self.check_notify(&[&pre_tasks, &tasks, &post_tasks], &handlers);
        Some(Play {
            name,
            hosts,
            gather_facts,
            vars,
            vars_files,
            roles: roles.into_iter().map(|(r, _)| r).collect(),
            pre_tasks,
            tasks,
            post_tasks,
            handlers,
            tags,
            location: loc,
        })
    }

    /// Every `notify` names a handler (by name, `role : name` or `listen` topic) of the play or
    /// of a role it includes; Ansible fails the run when one is missing, we refuse it up front.
    fn check_notify(&mut self, sections: &[&Vec<Item>], handlers: &[Item]) {
        fn walk<'i>(items: &'i [Item], out: &mut Vec<&'i Arc<Task>>) {
            for i in items {
                match i {
                    Item::Task(t) => {
                        out.push(t);
                        match &t.action {
                            Action::IncludeTasks {
                                preloaded: Some(items),
                                ..
                            } => walk(items, out),
                            Action::IncludeRole { role, .. } => {
                                walk(&role.tasks, out);
                                walk(&role.handlers, out);
                            }
                            _ => {}
                        }
                    }
                    Item::Block(b) => {
                        walk(&b.block, out);
                        walk(&b.rescue, out);
                        walk(&b.always, out);
                    }
                }
            }
        }
        let mut tasks = Vec::new();
        for s in sections {
            walk(s, &mut tasks);
        }
        let mut handler_tasks = Vec::new();
        walk(handlers, &mut handler_tasks);
        let mut names: Vec<String> = Vec::new();
        let mut add = |t: &Task| {
            if let Some(n) = &t.name {
                names.push(n.clone());
                if let Some(r) = &t.role {
                    names.push(format!("{} : {n}", r.name));
                }
            }
            names.extend(t.listen.iter().cloned());
        };
        for t in &handler_tasks {
            add(t);
        }
        for t in &tasks {
            if let Action::IncludeRole { role, .. } = &t.action {
                let mut hs = Vec::new();
                walk(&role.handlers, &mut hs);
                for h in hs {
                    add(h);
                }
            }
        }
        for t in tasks.iter().chain(handler_tasks.iter()) {
            for n in &t.notify {
                if !Templar::is_template(n) && !names.contains(n) {
                    self.errors.push(
                        LoadError::at(
                            t.location.clone(),
                            format!("notify: no handler named or listening to `{n}`"),
                        )
                        .with_key("notify"),
                    );
                }
            }
        }
    }

    fn check_become(&mut self, entries: &[Entry], file: &Arc<str>) {
        for e in entries {
            let bad = match e.key.as_str() {
                "become_user" => e.value.as_str().is_some_and(|u| u != "root"),
                "become_method" => e.value.as_str().is_some_and(|m| m != "sudo"),
                _ => false,
            };
            if bad {
                self.errors.push(
                    LoadError::at(
                        Location::new(file.clone(), e.key_line),
                        format!(
                            "`{}` other than root/sudo is not supported (the agent runs as root)",
                            e.key
                        ),
                    )
                    .with_key(e.key.clone()),
                );
            }
        }
    }

    /// A `roles:` entry: a name, or a mapping with `role`/`name`, keywords and parameters.
    fn role_ref(&mut self, node: &Node, file: &Arc<str>) -> Option<(Arc<Role>, Common)> {
        let at = Location::new(file.clone(), node.line);
        let (name, entries): (String, &[Entry]) = match &node.kind {
            NodeKind::Str(s) => (s.clone(), &[]),
            NodeKind::Map(entries) => {
                let name = node
                    .get("role")
                    .or_else(|| node.get("name"))
                    .and_then(|n| n.as_str())
                    .map(str::to_string);
                match name {
                    Some(n) => (n, entries),
                    None => {
                        self.errors
                            .push(LoadError::at(at, "a role entry needs `role`").with_key("role"));
                        return None;
                    }
                }
            }
            _ => {
                self.errors.push(LoadError::at(
                    at,
                    "a role entry must be a name or a mapping",
                ));
                return None;
            }
        };
        let mut common = Common::default();
        let mut params = RawVars::new();
        for e in entries {
            match e.key.as_str() {
                "role" | "name" => {}
                "when" => common.when = self.conditions(&e.value, file, "when"),
                "tags" => common.tags = self.string_list(&e.value, file, "tags"),
                "vars" => params.extend(self.vars_map(&e.value, file)),
                "become" | "become_user" | "become_method" => {}
                k if is_identifier(k) => {
                    self.check_templates(&e.value, file);
                    params.insert(k.to_string(), e.value.to_value());
                }
                k => self.errors.push(
                    LoadError::at(
                        Location::new(file.clone(), e.key_line),
                        format!("unsupported role keyword `{k}`"),
                    )
                    .with_key(k),
                ),
            }
        }
        self.check_become(entries, file);
        let role = self.load_role(&name, None, params, &at)?;
        Some((role, common))
    }

    fn load_role(
        &mut self,
        name: &str,
        tasks_from: Option<&str>,
        params: RawVars,
        at: &Location,
    ) -> Option<Arc<Role>> {
        if self.depth > 20 {
            self.errors.push(LoadError::at(
                at.clone(),
                "roles or imports nested too deeply (a loop?)",
            ));
            return None;
        }
        let path = match self.base.join(&format!("roles/{name}")) {
            Ok(p) => p,
            Err(e) => {
                self.errors.push(LoadError::at(at.clone(), e.to_string()));
                return None;
            }
        };
        if !matches!(
            self.source.kind(&path),
            Ok(Some(crate::source::SourceKind::Dir))
        ) {
            self.errors.push(LoadError::at(
                at.clone(),
                format!("role `{name}` not found (looked in {path})"),
            ));
            return None;
        }
        let main = |dir: &str, file: &str| -> Option<RepoPath> {
            for ext in ["yml", "yaml"] {
                let p = path.join(&format!("{dir}/{file}.{ext}")).ok()?;
                if let Ok(Some(_)) = self.source.kind(&p) {
                    return Some(p);
                }
            }
            None
        };
        let defaults_path = main("defaults", "main");
        let vars_path = main("vars", "main");
        let tasks_name = tasks_from.unwrap_or("main");
        let tasks_path = main("tasks", tasks_name.trim_end_matches(".yml"));
        let handlers_path = main("handlers", "main");
        if tasks_from.is_some() && tasks_path.is_none() {
            self.errors.push(LoadError::at(
                at.clone(),
                format!("role `{name}` has no tasks file `{tasks_name}`"),
            ));
            return None;
        }
        let defaults = defaults_path
            .map(|p| self.vars_file(&p, Some(at)))
            .unwrap_or_default();
        let vars = vars_path
            .map(|p| self.vars_file(&p, Some(at)))
            .unwrap_or_default();
        // Tasks refer to their role (for files and variables): build the role first, then
        // attach the tasks through a second Arc.
        let shell = Arc::new(Role {
            name: name.to_string(),
            path: path.clone(),
            defaults: defaults.clone(),
            vars: vars.clone(),
            params: params.clone(),
            tasks: Vec::new(),
            handlers: Vec::new(),
        });
        self.depth += 1;
        let tasks = tasks_path
            .map(|p| self.task_file(&p, Some(shell.clone()), false))
            .unwrap_or_default();
        let handlers = handlers_path
            .map(|p| self.task_file(&p, Some(shell.clone()), true))
            .unwrap_or_default();
        self.depth -= 1;
        Some(Arc::new(Role {
            name: name.to_string(),
            path,
            defaults,
            vars,
            params,
            tasks,
            handlers,
        }))
    }

    fn task_file(&mut self, path: &RepoPath, role: Option<Arc<Role>>, handlers: bool) -> Vec<Item> {
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

    fn task_list_key(
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

    fn task_list(
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

    fn common(&mut self, entries: &[Entry], file: &Arc<str>) -> Common {
        let mut c = Common::default();
        for e in entries {
            match e.key.as_str() {
                "when" => c.when = self.conditions(&e.value, file, "when"),
                "tags" => c.tags = self.string_list(&e.value, file, "tags"),
                "vars" => c.vars = self.vars_map(&e.value, file),
                "ignore_errors" => {
                    c.ignore_errors = Some(self.bool_node(&e.value, file, "ignore_errors"))
                }
                "no_log" => c.no_log = Some(self.bool_node(&e.value, file, "no_log")),
                "check_mode" => c.check_mode = Some(self.bool_node(&e.value, file, "check_mode")),
                "environment" => {
                    self.check_templates(&e.value, file);
                    c.environment = Some(e.value.to_value());
                }
                _ => {}
            }
        }
        self.check_become(entries, file);
        c
    }

    fn item(
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

    fn block(
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
            if !COMMON_KEYS.contains(&k) && !BLOCK_KEYS.contains(&k) {
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
        Some(Item::Block(Arc::new(Block {
            name: node
                .get("name")
                .and_then(|n| n.as_str())
                .map(str::to_string),
            common,
            block: self.task_list_key(node, "block", file, role.clone(), handler),
            rescue: self.task_list_key(node, "rescue", file, role.clone(), handler),
            always: self.task_list_key(node, "always", file, role.clone(), handler),
            role,
            location: loc,
        })))
    }

    fn task(
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
                !COMMON_KEYS.contains(&k) && !TASK_KEYS.contains(&k) && !k.starts_with("with_")
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
        let action = self.action(action_entry, node.get("args"), file, role.clone(), &key_loc)?;

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

    fn action(
        &mut self,
        entry: &Entry,
        args_kw: Option<&Node>,
        file: &Arc<str>,
        role: Option<Arc<Role>>,
        at: &Location,
    ) -> Option<Action> {
        let name = entry.key.as_str();
        let short = name
            .strip_prefix("ansible.builtin.")
            .or_else(|| name.strip_prefix("ansible.legacy."))
            .unwrap_or(name);
        match short {
            "meta" => {
                return match entry.value.as_str() {
                    Some("flush_handlers") => Some(Action::FlushHandlers),
                    Some("noop") => Some(Action::MetaNoop("noop".to_string())),
                    other => {
                        self.errors.push(
                            LoadError::at(
                                at.clone(),
                                format!(
                                    "unsupported meta action `{}` (supported: flush_handlers, noop)",
                                    other.unwrap_or("?")
                                ),
                            )
                            .with_key("meta"),
                        );
                        None
                    }
                };
            }
            "import_tasks" | "include_tasks" => {
                let (file_name, extra) = self.include_target(&entry.value, file, short)?;
                if !extra.is_empty() {
                    self.errors.push(
                        LoadError::at(
                            at.clone(),
                            format!("unsupported `{short}` argument `{}`", extra[0]),
                        )
                        .with_key(short),
                    );
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
                                .push(LoadError::at(at.clone(), e).with_key(short));
                            return None;
                        }
                    };
                    let items = self.nested(|this| this.task_file(&path, role.clone(), false));
                    // An import is its tasks, in place: represented as an unnamed block.
                    return Some(Action::IncludeTasks {
                        file: Value::from(n),
                        preloaded: Some(items),
                        import: true,
                    });
                }
                let preloaded = match static_name {
                    Some(n) => match resolve(self, n) {
                        Ok(path) => {
                            Some(self.nested(|this| this.task_file(&path, role.clone(), false)))
                        }
                        Err(e) => {
                            self.errors
                                .push(LoadError::at(at.clone(), e).with_key(short));
                            return None;
                        }
                    },
                    None => None,
                };
                return Some(Action::IncludeTasks {
                    file: file_name,
                    preloaded,
                    import: false,
                });
            }
            "import_role" | "include_role" => {
                let Some(map) = entry.value.as_map() else {
                    self.errors.push(
                        LoadError::at(at.clone(), format!("`{short}` needs `name`"))
                            .with_key(short),
                    );
                    return None;
                };
                let mut role_name = None;
                let mut tasks_from = None;
                for e in map {
                    match e.key.as_str() {
                        "name" => role_name = e.value.as_str().map(str::to_string),
                        "tasks_from" => tasks_from = e.value.as_str().map(str::to_string),
                        k => self.errors.push(
                            LoadError::at(
                                Location::new(file.clone(), e.key_line),
                                format!(
                                    "unsupported `{short}` argument `{k}` (supported: name, tasks_from)"
                                ),
                            )
                            .with_key(k),
                        ),
                    }
                }
                let Some(role_name) = role_name else {
                    self.errors.push(
                        LoadError::at(at.clone(), format!("`{short}` needs `name`"))
                            .with_key(short),
                    );
                    return None;
                };
                if Templar::is_template(&role_name) {
                    self.errors.push(
                        LoadError::at(at.clone(), "templated role names are not supported")
                            .with_key("name"),
                    );
                    return None;
                }
                let role = self.nested(|this| {
                    this.load_role(&role_name, tasks_from.as_deref(), RawVars::new(), at)
                })?;
                return Some(Action::IncludeRole {
                    name: role_name,
                    tasks_from,
                    role,
                    import: short == "import_role",
                });
            }
            _ => {}
        }
        let Some(module) = modules::lookup(name) else {
            self.errors.push(
                LoadError::at(at.clone(), format!("unsupported module `{name}`")).with_key(name),
            );
            return None;
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
                        .push(LoadError::at(at.clone(), e).with_key(name.to_string()));
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
        let short_name = modules::canonical_name(name).unwrap_or("?");
        if short_name == "set_fact" {
            for (k, v) in &pairs {
                if k != "cacheable" && !is_identifier(k) {
                    self.errors.push(
                        LoadError::at(
                            Location::new(file.clone(), v.line),
                            format!("`{k}` is not a valid variable name"),
                        )
                        .with_key(k.clone()),
                    );
                }
                self.check_templates(v, file);
            }
            if pairs.is_empty() {
                self.errors.push(LoadError::at(
                    at.clone(),
                    "`set_fact` needs at least one variable",
                ));
            }
        } else if let Err(e) = spec.validate(&pairs, file, self.templar) {
            self.errors.push(e);
        } else {
            for (_, v) in &pairs {
                self.check_templates(v, file);
            }
            let search = search_dirs(role.as_ref(), file, &self.base);
            let ctx = LoadContext {
                source: self.source,
                templar: self.templar,
                file,
                task: at,
                search: &search,
            };
            if let Err(e) = module.validate(&TaskArgs { pairs: &pairs }, &ctx) {
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

    fn nested<T>(&mut self, f: impl FnOnce(&mut Self) -> T) -> T {
        self.depth += 1;
        let out = f(self);
        self.depth -= 1;
        out
    }

    /// A task file named by an include: relative to the including file, then the role's
    /// `tasks/`, then the playbook's directory (Ansible's search order).
    fn resolve_task_file(
        &self,
        name: &str,
        dir: &RepoPath,
        role: Option<&Arc<Role>>,
    ) -> Result<RepoPath, String> {
        if self.depth > 20 {
            return Err("includes nested too deeply (a loop?)".into());
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
                Err(e) => escape = Some(e.to_string()),
            }
        }
        Err(escape.unwrap_or_else(|| format!("task file `{name}` not found")))
    }

    fn include_target(
        &mut self,
        node: &Node,
        file: &Arc<str>,
        key: &str,
    ) -> Option<(Value, Vec<String>)> {
        match &node.kind {
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
                match name {
                    Some(n) => Some((n, extra)),
                    None => {
                        self.errors.push(
                            LoadError::at(
                                Location::new(file.clone(), node.line),
                                format!("`{key}` needs a file name"),
                            )
                            .with_key(key),
                        );
                        None
                    }
                }
            }
            _ => {
                self.errors.push(
                    LoadError::at(
                        Location::new(file.clone(), node.line),
                        format!("`{key}` needs a file name"),
                    )
                    .with_key(key),
                );
                None
            }
        }
    }

    fn conditions(&mut self, node: &Node, file: &Arc<str>, key: &str) -> Vec<Value> {
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

    fn string_list(&mut self, node: &Node, file: &Arc<str>, key: &str) -> Vec<String> {
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

    fn bool_node(&mut self, node: &Node, file: &Arc<str>, key: &str) -> bool {
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

pub fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Loads a task file named at run time by `include_tasks` (a templated name).
pub fn load_task_file(
    source: &dyn Source,
    templar: &Templar,
    dir: &RepoPath,
    role: Option<Arc<Role>>,
    name: &str,
) -> Result<Vec<Item>, LoadErrors> {
    let mut loader = Loader::new(source, templar);
    let path = loader
        .resolve_task_file(name, dir, role.as_ref())
        .map_err(|e| LoadErrors::from(LoadError::new(e)))?;
    let items = loader.task_file(&path, role, false);
    if loader.errors.is_empty() {
        Ok(items)
    } else {
        Err(LoadErrors(loader.errors))
    }
}

/// Where a task's relative `src` is looked for, most specific first: its role's directory, the
/// directory of its task file, the playbook's directory.
pub fn search_dirs(role: Option<&Arc<Role>>, task_file: &str, base: &RepoPath) -> Vec<RepoPath> {
    let mut search = Vec::with_capacity(3);
    if let Some(r) = role {
        search.push(r.path.clone());
    }
    let dir = RepoPath::new(task_file)
        .map(|p| p.parent())
        .unwrap_or_default();
    if !search.contains(&dir) {
        search.push(dir);
    }
    if !search.contains(base) {
        search.push(base.clone());
    }
    search
}

/// What the tasks of the playbook will ask of the host (every package and unit a task names
/// literally, from each module's [`Module::host_queries`]), so the engine can read their state
/// with one query for all.
pub fn host_queries(playbook: &Playbook) -> HostQueries {
    fn walk(items: &[Item], out: &mut HostQueries) {
        for item in items {
            match item {
                Item::Task(t) => match &t.action {
                    Action::Module { module, args, .. } => module.host_queries(args, out),
                    Action::IncludeTasks {
                        preloaded: Some(items),
                        ..
                    } => walk(items, out),
                    Action::IncludeRole { role, .. } => {
                        walk(&role.tasks, out);
                        walk(&role.handlers, out);
                    }
                    _ => {}
                },
                Item::Block(b) => {
                    walk(&b.block, out);
                    walk(&b.rescue, out);
                    walk(&b.always, out);
                }
            }
        }
    }
    let mut out = HostQueries::default();
    for play in &playbook.plays {
        for items in [
            &play.pre_tasks,
            &play.tasks,
            &play.post_tasks,
            &play.handlers,
        ] {
            walk(items, &mut out);
        }
        for role in &play.roles {
            walk(&role.handlers, &mut out);
        }
    }
    out.dedup();
    out
}
