//! Loading a playbook: plays, roles, task files, variables files — every file parsed and every
//! task validated before anything runs. What is not supported is refused here, naming file,
//! line and key.

use std::sync::Arc;

use indexmap::IndexMap;
use minijinja::Value;

use crate::args::parse_kv;
use crate::error::{LoadError, LoadErrors, Location};
use crate::host::HostQueries;
use crate::inventory::InventoryHost;
use crate::modules;
use crate::resource::{LoadContext, Module, TaskArgs};
use crate::source::{RepoPath, Source};
use crate::template::Templar;
use crate::yaml::{self, Node};

mod action;
mod argspec;
mod import;
mod inventory_vars;
mod keywords;
mod loops;
mod nodes;
mod play;
mod role;
mod tasks;

pub use argspec::{option_names, validate_arguments};
use keywords::*;
use role::{role_handlers, role_item, roles_with_dependencies};

/// Variables as written (templates inside are rendered lazily, when used).
pub type RawVars = IndexMap<String, Value>;

#[derive(Debug)]
pub struct Playbook {
    pub file: RepoPath,
    pub plays: Vec<Play>,
    /// The inventory's group variables and `group_vars/` for this host's groups, merged.
    pub group_vars: RawVars,
    /// The inventory's host variables and `host_vars/<inventory_hostname>`, merged.
    pub host_vars: RawVars,
    /// This host in the inventory (`inventory_hostname`, its groups).
    pub host: InventoryHost,
    /// The repository's ansible.cfg as a path on this host (`ansible_config_file`).
    pub config_file: Option<String>,
    /// ansible.cfg `hash_behaviour = merge`: variable layers merge dictionaries.
    pub hash_merge: bool,
    /// The `ansible_managed` text (ansible.cfg's, or Ansible's default).
    pub ansible_managed: String,
    /// Tasks the agent does not implement (a module, an argument, an include's option): each
    /// fails only when it runs. `validate` lists them; `converge` prints them once.
    pub warnings: Vec<LoadError>,
    /// Of those, the module tasks that run through the host's ansible-core when the bridge is
    /// on (`ansible_modules: auto`), with the module each runs.
    pub bridgeable: Vec<(LoadError, String)>,
}

#[derive(Debug)]
pub struct Play {
    pub name: String,
    pub hosts: Vec<String>,
    /// `hosts` selects this host (else the play is skipped: "no hosts matched").
    pub runs_here: bool,
    pub gather_facts: bool,
    /// The play's keywords its tasks inherit (`become`, `no_log`, `environment`, tags...).
    pub common: Common,
    /// Notified handlers still run after a task failed.
    pub force_handlers: bool,
    pub vars: RawVars,
    pub vars_files: RawVars,
    pub roles: Vec<Arc<Role>>,
    pub pre_tasks: Vec<Item>,
    /// The tasks of `roles:`, then `tasks:`.
    pub tasks: Vec<Item>,
    pub post_tasks: Vec<Item>,
    pub handlers: Vec<Item>,
    pub tags: Vec<String>,
    /// The `when` of the `import_playbook` that brought the play: on each of its tasks (not
    /// on its handlers), as ansible-core does.
    pub when: Vec<Value>,
    pub location: Location,
}

/// A role as loaded for one use: its files, its variables and the parameters it was given.
#[derive(Debug)]
pub struct Role {
    pub name: String,
    /// `ansible_role_name`: the collection role's `ns.coll.role` as written, else `name`.
    pub fqcn: String,
    pub path: RepoPath,
    pub defaults: RawVars,
    pub vars: RawVars,
    pub params: RawVars,
    pub tasks: Vec<Item>,
    pub handlers: Vec<Item>,
    /// `meta/main.yml` `dependencies`, each with the keywords of its entry: run before the role.
    pub dependencies: Vec<(Arc<Role>, Common)>,
    /// `meta/main.yml` `allow_duplicates`: the role runs again when used again in a play.
    pub allow_duplicates: bool,
}

#[derive(Debug, Clone)]
pub enum Item {
    Task(Arc<Task>),
    Block(Arc<Block>),
}

/// Keywords shared by plays, role entries, blocks and tasks, inherited from the enclosing ones.
#[derive(Debug, Clone, Default)]
pub struct Common {
    pub when: Vec<Value>,
    pub tags: Vec<String>,
    pub vars: RawVars,
    pub ignore_errors: Option<Flag>,
    pub no_log: Option<Flag>,
    pub environment: Option<Value>,
    pub check_mode: Option<Flag>,
    /// Per-task `--diff`.
    pub diff: Option<Flag>,
    /// `become` and `become_user`: the agent runs as root, so a task that becomes another
    /// user fails when it runs.
    pub become_: Option<Flag>,
    pub become_user: Option<(Value, Location)>,
    /// One host: a task runs once anyway.
    pub run_once: Option<Flag>,
    /// `delegate_to` (a template): this host only, checked when the task runs.
    pub delegate_to: Option<Value>,
    pub delegate_facts: Option<Value>,
    /// `notify` as written on a task or block: the nearest one applies (a block's is
    /// inherited by its tasks that have none).
    pub notify: Option<Vec<String>>,
}

/// A boolean keyword: literal, or a template rendered with the task's variables when the task
/// runs (`no_log: "{{ debops__no_log | d(True) }}"`).
#[derive(Debug, Clone, PartialEq)]
pub enum Flag {
    Literal(bool),
    Template {
        text: String,
        key: &'static str,
        location: Location,
    },
}

impl Flag {
    /// As written: the boolean, or the template text (how `ansible_failed_task` shows it).
    pub fn as_value(&self) -> Value {
        match self {
            Flag::Literal(b) => Value::from(*b),
            Flag::Template { text, .. } => Value::from(text.as_str()),
        }
    }
}

#[derive(Debug)]
pub struct Block {
    pub name: Option<String>,
    pub common: Common,
    pub block: Vec<Item>,
    pub rescue: Vec<Item>,
    pub always: Vec<Item>,
    pub role: Option<Arc<Role>>,
    /// A role's tasks as used in a play: run once per play for the same role, parameters and
    /// keywords (Ansible's dedupe), unless the role allows duplicates. None for other blocks.
    pub run_key: Option<String>,
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
    /// `until`: conditions a result must meet, else the task is tried again.
    pub until: Option<Vec<Value>>,
    /// `retries` and `delay` as written (templates allowed).
    pub retries: Option<Value>,
    pub delay: Option<Value>,
    /// The role the task came from (for `files/`, `templates/` and role variables).
    pub role: Option<Arc<Role>>,
    pub location: Location,
}

#[derive(Debug, Clone)]
pub struct Loop {
    pub items: Value,
    /// `with_<lookup>`: the lookup whose results are the items (`with_items` is `items`, which
    /// flattens one level); `None` for `loop`.
    pub with: Option<&'static str>,
    /// `loop_control.pause`: seconds between items (a number or a template).
    pub pause: Option<Value>,
    /// `loop_control.extended`: `ansible_loop` is set for each item.
    pub extended: bool,
    /// `loop_control.extended_allitems`: `ansible_loop.allitems` too (default true).
    pub extended_allitems: bool,
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
    /// The other `meta` actions, which change how the play goes on.
    Meta(Meta),
    /// A role's `argument_specs` for its entry point, checked against its variables and
    /// parameters when its tasks start (ansible-core's `validate_argument_spec`).
    ValidateArgs {
        options: Value,
        params: RawVars,
    },
    /// What the agent does not implement (a module, a module argument, an include option):
    /// loading goes on, and the task fails with `error` (file, line, key) only when it runs.
    Unsupported {
        /// The action as written (`pacman`), shown for an unnamed task.
        written: String,
        error: LoadError,
        /// A module task (an unknown module, or a module argument the agent lacks): what runs
        /// through the host's ansible-core when the bridge is on ([`crate::bridge`]).
        call: Option<crate::bridge::ModuleCall>,
    },
}

/// A `meta` action that acts on the run (ansible-core's strategy `_execute_meta`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Meta {
    EndHost,
    EndPlay,
    EndBatch,
    EndRole,
    ClearFacts,
    ClearHostErrors,
    /// No persistent connection here: nothing to reset (`when` is ignored, as Ansible does).
    ResetConnection,
    /// The inventory is read once per run: nothing changes (`when` ignored, as Ansible does).
    RefreshInventory,
    /// Only meaningful when Ansible inserts it itself: written in a task it does nothing.
    RoleComplete,
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
            Action::FlushHandlers | Action::MetaNoop(_) | Action::Meta(_) => "meta",
            Action::Unsupported { written, .. } => written,
            Action::ValidateArgs { .. } => "validate_argument_spec",
        }
    }

    /// The name shown for the task, as Ansible shows it (the action when it has no name).
    pub fn display_name(&self) -> String {
        let base = match &self.name {
            Some(n) => n.clone(),
            None => match &self.action {
                Action::Module { written, .. } | Action::Unsupported { written, .. } => {
                    written.clone()
                }
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

fn dedup<T: PartialEq>(items: Vec<T>) -> Vec<T> {
    let mut out: Vec<T> = Vec::new();
    for w in items {
        if !out.contains(&w) {
            out.push(w);
        }
    }
    out
}

/// Reads a playbook and everything it refers to from `source`.
pub struct Loader<'a> {
    source: &'a dyn Source,
    templar: &'a Templar,
    /// The directory the playbook is in: roles, vars files and `files/` are found from here.
    base: RepoPath,
    errors: Vec<LoadError>,
    /// What is not implemented but only fails when reached (see [`Action::Unsupported`]).
    warnings: Vec<LoadError>,
    /// Of those, what the bridge to ansible-core can run (with the module's name).
    bridgeable: Vec<(LoadError, String)>,
    /// Depth of nested imports, against import loops.
    depth: usize,
    /// The host plays are matched against (`None`: a task file loaded alone).
    host: Option<InventoryHost>,
    /// ansible.cfg `hash_behaviour = merge`: dictionaries of variable layers merge.
    hash_merge: bool,
    /// The repository's ansible.cfg and where it is on this host.
    cfg: Option<(crate::ansible_cfg::AnsibleCfg, String)>,
    /// Loading keywords of the enclosing plays, roles and blocks.
    scope: LoadScope,
    /// The variables given on the command line (`-e`): a `vars_prompt` needs its variable there.
    given_vars: Vec<String>,
    /// Role directories of the repository besides `roles/` beside the playbook (ansible.cfg's
    /// `roles_path`).
    role_dirs: Vec<RepoPath>,
}
impl<'a> Loader<'a> {
    pub fn new(source: &'a dyn Source, templar: &'a Templar) -> Loader<'a> {
        Loader {
            source,
            templar,
            base: RepoPath::root(),
            errors: Vec::new(),
            warnings: Vec::new(),
            bridgeable: Vec::new(),
            depth: 0,
            host: None,
            hash_merge: false,
            cfg: None,
            scope: LoadScope::default(),
            given_vars: Vec::new(),
            role_dirs: Vec::new(),
        }
    }

    /// Directories (in the repository) where roles are also looked for, after `roles/` beside
    /// the playbook: ansible.cfg's `roles_path`.
    pub fn with_role_dirs(mut self, dirs: Vec<RepoPath>) -> Self {
        self.role_dirs = dirs;
        self
    }

    /// The names of the variables given with `-e` (what a `vars_prompt` would ask for).
    pub fn with_extra_vars(mut self, names: impl IntoIterator<Item = String>) -> Self {
        self.given_vars = names.into_iter().collect();
        self
    }

    /// The repository's ansible.cfg (see [`crate::ansible_cfg`]), found at `path` on this host.
    pub fn with_ansible_cfg(
        mut self,
        cfg: Option<crate::ansible_cfg::AnsibleCfg>,
        path: String,
    ) -> Self {
        self.hash_merge = cfg.as_ref().is_some_and(|c| c.hash_merge);
        self.cfg = cfg.map(|c| (c, path));
        self
    }

    /// Loads and validates the playbook at `file` for `host` (its inventory name and groups).
    /// All errors found are returned together.
    pub fn load(mut self, file: &RepoPath, host: &InventoryHost) -> Result<Playbook, LoadErrors> {
        self.base = file.parent();
        self.host = Some(host.clone());
        let root = self.parse_file(file).map_err(LoadErrors::from)?;
        let fname: Arc<str> = Arc::from(file.as_str());
        let (group_vars, host_vars) = self.inventory_vars(host);
        let mut plays = Vec::new();
        self.plays(&root, &fname, &mut plays);
        if !self.errors.is_empty() {
            return Err(LoadErrors(self.errors));
        }
        // A role used twice is loaded twice: one warning per place.
        let warnings = dedup(std::mem::take(&mut self.warnings));
        Ok(Playbook {
            file: file.clone(),
            plays,
            group_vars,
            host_vars,
            host: host.clone(),
            config_file: self.cfg.as_ref().map(|(_, path)| path.clone()),
            hash_merge: self.hash_merge,
            ansible_managed: match &self.cfg {
                Some((c, _)) => c.ansible_managed().to_string(),
                None => crate::ansible_cfg::DEFAULT_MANAGED.to_string(),
            },
            warnings,
            bridgeable: dedup(self.bridgeable),
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
        .map_err(|e| LoadErrors::from(LoadError::new(e.to_string())))?;
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

/// Visits every task of `items` and of the blocks, static includes and included roles (their
/// handlers too) in them, in order.
pub fn visit_tasks<'i>(items: &'i [Item], f: &mut dyn FnMut(&'i Arc<Task>)) {
    for item in items {
        match item {
            Item::Task(t) => {
                f(t);
                match &t.action {
                    Action::IncludeTasks {
                        preloaded: Some(items),
                        ..
                    } => visit_tasks(items, f),
                    Action::IncludeRole { role, .. } => {
                        visit_tasks(&role.tasks, f);
                        visit_tasks(&role.handlers, f);
                    }
                    _ => {}
                }
            }
            Item::Block(b) => {
                visit_tasks(&b.block, f);
                visit_tasks(&b.rescue, f);
                visit_tasks(&b.always, f);
            }
        }
    }
}

/// What the tasks of the playbook will ask of the host (every package and unit a task names
/// literally, from each module's [`Module::host_queries`]), so the engine can read their state
/// with one query for all.
pub fn host_queries(playbook: &Playbook) -> HostQueries {
    fn walk(items: &[Item], out: &mut HostQueries) {
        visit_tasks(items, &mut |t| {
            if let Action::Module { module, args, .. } = &t.action {
                module.host_queries(args, out);
            }
        });
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
