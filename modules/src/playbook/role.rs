//! Roles: a `roles:` entry or a dependency, where the role is found (collections, `roles/`
//! beside the playbook, the configured role directories, beside the depending role), its
//! files, and its `meta/main.yml` (dependencies run before it, `allow_duplicates`,
//! `collections`, `argument_specs`).

use std::sync::Arc;

use super::*;
use crate::error::{LoadError, Location};
use crate::source::SourceKind;
use crate::yaml::{Entry, Node, NodeKind};

/// The keys of a role's `meta/main.yml` (ansible-core's RoleMetadata).
const META_KEYS: &[&str] = &[
    "galaxy_info",
    "dependencies",
    "allow_duplicates",
    "collections",
    "argument_specs",
];

/// What `meta/main.yml` says.
#[derive(Default)]
struct Meta {
    dependencies: Vec<(Arc<Role>, Common)>,
    allow_duplicates: bool,
    argument_specs: Option<(Node, Arc<str>)>,
}

impl Loader<'_> {
    /// A `roles:` entry or a dependency: a name, or a mapping with `role` (or `name`),
    /// keywords and parameters.
    pub(super) fn role_ref(&mut self, node: &Node, file: &Arc<str>) -> Option<(Arc<Role>, Common)> {
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
        if Templar::is_template(&name) {
            self.errors.push(
                LoadError::at(at, "templated role names are not supported in `roles:`")
                    .with_key("role"),
            );
            return None;
        }
        // Keywords apply to the role's tasks; any other key is a role parameter.
        let mut common = self.common(entries, file);
        common.vars = RawVars::new();
        let mut params = RawVars::new();
        for e in entries {
            match e.key.as_str() {
                "role" => {}
                "vars" => params.extend(self.vars_map(&e.value, file)),
                k if is_common_key(k) => {}
                "delegate_to" | "delegate_facts" => self.role_delegation(e, file),
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
        let saved = self.push_scope(entries, file);
        let role = self.load_role(&name, None, params, &at);
        self.scope = saved;
        Some((role?, common))
    }

    /// Where the role `name` is, in ansible-core's order: a collection's `roles/` (a
    /// `ns.coll.role` name, or a short name and the `collections` keyword), `roles/` beside
    /// the playbook, the configured role directories, beside the depending role, the
    /// playbook's directory.
    fn find_role(&self, name: &str) -> Result<RepoPath, String> {
        let mut candidates: Vec<String> = Vec::new();
        let parts: Vec<&str> = name.split('.').collect();
        let collection_dirs = ["collections/ansible_collections", "ansible_collections"];
        if parts.len() == 3 && parts.iter().all(|p| is_identifier(p)) {
            for d in collection_dirs {
                candidates.push(format!("{d}/{}/{}/roles/{}", parts[0], parts[1], parts[2]));
            }
        } else if is_identifier(name) {
            for coll in &self.scope.collections {
                if let Some((ns, c)) = coll.split_once('.') {
                    for d in collection_dirs {
                        candidates.push(format!("{d}/{ns}/{c}/roles/{name}"));
                    }
                }
            }
        }
        let mut tried = Vec::new();
        let mut dirs: Vec<RepoPath> = Vec::new();
        for c in &candidates {
            // Collections beside the playbook, then at the top of the repository.
            for base in [&self.base, &RepoPath::root()] {
                if let Ok(p) = base.join(c) {
                    dirs.push(p);
                }
            }
        }
        let mut plain: Vec<RepoPath> = vec![self.base.join("roles").unwrap_or_default()];
        plain.extend(self.role_dirs.iter().cloned());
        if let Some(b) = &self.scope.role_basedir {
            plain.push(b.clone());
        }
        plain.push(self.base.clone());
        for dir in plain {
            match dir.join(name) {
                Ok(p) => dirs.push(p),
                Err(e) => return Err(e.to_string()),
            }
        }
        for p in dirs {
            if matches!(self.source.kind(&p), Ok(Some(SourceKind::Dir))) {
                return Ok(p);
            }
            if !tried.contains(&p.to_string()) {
                tried.push(p.to_string());
            }
        }
        Err(format!(
            "role `{name}` not found (looked in {})",
            tried.join(", ")
        ))
    }

    pub(super) fn load_role(
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
        let path = match self.find_role(name) {
            Ok(p) => p,
            Err(e) => {
                self.errors.push(LoadError::at(at.clone(), e));
                return None;
            }
        };
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
        let meta_path = main("meta", "main");
        let specs_path = main("meta", "argument_specs");
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
        // A collection role's short name, as Ansible shows it.
        let short = name
            .rsplit('.')
            .next()
            .filter(|_| name.split('.').count() == 3);
        let display = short.unwrap_or(name).to_string();
        // Dependencies and tasks are loaded with the role's own `collections`, and sibling
        // roles of this one are found for its dependencies.
        let saved = self.scope.clone();
        self.scope.role_basedir = Some(path.parent());
        self.depth += 1;
        let mut meta = meta_path.map(|p| self.role_meta(&p)).unwrap_or_default();
        if let Some(p) = specs_path {
            if let Ok(node) = self.parse_file(&p) {
                if let Some(specs) = node.get("argument_specs") {
                    meta.argument_specs = Some((specs.clone(), Arc::from(p.as_str())));
                }
            }
        }
        // Tasks refer to their role (for files and variables): build the role first, then
        // attach the tasks through a second Arc.
        let fqcn = if short.is_some() {
            name.to_string()
        } else {
            display.clone()
        };
        let shell = Arc::new(Role {
            name: display.clone(),
            fqcn: fqcn.clone(),
            path: path.clone(),
            defaults: defaults.clone(),
            vars: vars.clone(),
            params: params.clone(),
            tasks: Vec::new(),
            handlers: Vec::new(),
            dependencies: Vec::new(),
            allow_duplicates: meta.allow_duplicates,
        });
        let mut tasks = Vec::new();
        if let Some((specs, file)) = &meta.argument_specs {
            if let Some(task) = self.argument_spec_task(specs, file, tasks_name, &shell) {
                tasks.push(Item::Task(task));
            }
        }
        tasks.extend(
            tasks_path
                .map(|p| self.task_file(&p, Some(shell.clone()), false))
                .unwrap_or_default(),
        );
        let handlers = handlers_path
            .map(|p| self.task_file(&p, Some(shell.clone()), true))
            .unwrap_or_default();
        self.depth -= 1;
        self.scope = saved;
        Some(Arc::new(Role {
            name: display,
            fqcn,
            path,
            defaults,
            vars,
            params,
            tasks,
            handlers,
            dependencies: meta.dependencies,
            allow_duplicates: meta.allow_duplicates,
        }))
    }

    fn role_meta(&mut self, path: &RepoPath) -> Meta {
        let file: Arc<str> = Arc::from(path.as_str());
        let node = match self.parse_file(path) {
            Ok(n) => n,
            Err(e) => {
                self.errors.push(e);
                return Meta::default();
            }
        };
        let mut meta = Meta::default();
        let Some(entries) = node.as_map() else {
            if !matches!(node.kind, NodeKind::Null) {
                self.errors.push(LoadError::at(
                    Location::new(file.clone(), node.line),
                    "meta/main.yml must be a mapping",
                ));
            }
            return meta;
        };
        for e in entries {
            if !META_KEYS.contains(&e.key.as_str()) {
                self.errors.push(
                    LoadError::at(
                        Location::new(file.clone(), e.key_line),
                        format!("unsupported role meta key `{}`", e.key),
                    )
                    .with_key(e.key.clone()),
                );
            }
        }
        if let Some(n) = node.get("allow_duplicates") {
            meta.allow_duplicates = self.bool_node(n, &file, "allow_duplicates");
        }
        if let Some(n) = node.get("collections") {
            let mut names = self.string_list(n, &file, "collections");
            names.extend(std::mem::take(&mut self.scope.collections));
            self.scope.collections = names;
        }
        if let Some(specs) = node.get("argument_specs") {
            meta.argument_specs = Some((specs.clone(), file.clone()));
        }
        match node.get("dependencies").map(|n| &n.kind) {
            Some(NodeKind::Seq(items)) => {
                for item in items {
                    if let Some(dep) = self.role_ref(item, &file) {
                        meta.dependencies.push(dep);
                    }
                }
            }
            Some(NodeKind::Null) | None => {}
            Some(_) => self.errors.push(
                LoadError::at(
                    Location::new(file.clone(), node.line),
                    "`dependencies` must be a list of roles",
                )
                .with_key("dependencies"),
            ),
        }
        meta
    }
}

/// What identifies one use of a role in a play, for Ansible's dedupe (a role used again with
/// the same parameters, `when` and tags runs once): its path, parameters and keywords.
pub(super) fn role_key(role: &Role, common: &Common) -> String {
    format!(
        "{}|{:?}|{:?}|{:?}",
        role.path, role.params, common.when, common.tags
    )
}

/// A role with its keywords, as it runs: its dependencies first (each in turn), then its
/// tasks. Each part carries its dedupe key, unless its role allows duplicates.
pub(super) fn role_item(role: &Arc<Role>, common: &Common, at: &Location) -> Item {
    let mut block: Vec<Item> = role
        .dependencies
        .iter()
        .map(|(dep, c)| role_item(dep, c, at))
        .collect();
    block.push(Item::Block(Arc::new(Block {
        name: None,
        common: Common::default(),
        block: role.tasks.clone(),
        rescue: Vec::new(),
        always: Vec::new(),
        role: Some(role.clone()),
        run_key: (!role.allow_duplicates).then(|| role_key(role, common)),
        location: at.clone(),
    })));
    Item::Block(Arc::new(Block {
        name: None,
        common: common.clone(),
        block,
        rescue: Vec::new(),
        always: Vec::new(),
        role: Some(role.clone()),
        run_key: None,
        location: at.clone(),
    }))
}

/// The handlers of a role and of its dependencies, each use of a role once.
pub(super) fn role_handlers(
    role: &Arc<Role>,
    common: &Common,
    seen: &mut Vec<String>,
    out: &mut Vec<Item>,
) {
    for (dep, c) in &role.dependencies {
        role_handlers(dep, c, seen, out);
    }
    let key = role_key(role, common);
    if !seen.contains(&key) {
        seen.push(key);
        out.extend(role.handlers.iter().cloned());
    }
}

/// The roles of a play with their dependencies (each before the role that needs it): whose
/// defaults and variables the play's tasks see.
pub(super) fn roles_with_dependencies<'r>(
    roles: impl Iterator<Item = &'r Arc<Role>>,
) -> Vec<Arc<Role>> {
    fn add(role: &Arc<Role>, out: &mut Vec<Arc<Role>>) {
        for (dep, _) in &role.dependencies {
            add(dep, out);
        }
        out.push(role.clone());
    }
    let mut out = Vec::new();
    for r in roles {
        add(r, &mut out);
    }
    out
}

/// A role for `include_role`/`import_role`: its dependencies' tasks (and handlers) first, in
/// its own task list, as ansible-core runs them.
pub(super) fn inline_dependencies(role: Arc<Role>, at: &Location) -> Arc<Role> {
    if role.dependencies.is_empty() {
        return role;
    }
    let mut tasks: Vec<Item> = role
        .dependencies
        .iter()
        .map(|(dep, c)| role_item(dep, c, at))
        .collect();
    tasks.extend(role.tasks.iter().cloned());
    let mut handlers = Vec::new();
    let mut seen = Vec::new();
    for (dep, c) in &role.dependencies {
        role_handlers(dep, c, &mut seen, &mut handlers);
    }
    handlers.extend(role.handlers.iter().cloned());
    Arc::new(Role {
        name: role.name.clone(),
        fqcn: role.fqcn.clone(),
        path: role.path.clone(),
        defaults: role.defaults.clone(),
        vars: role.vars.clone(),
        params: role.params.clone(),
        tasks,
        handlers,
        dependencies: Vec::new(),
        allow_duplicates: role.allow_duplicates,
    })
}

#[cfg(test)]
mod tests {
    use crate::playbook::{Item, Loader, Playbook};
    use crate::source::{DirSource, RepoPath};
    use crate::template::Templar;

    fn load(files: &[(&str, &str)], role_dirs: &[&str]) -> Result<Playbook, String> {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            let path = dir.path().join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        let source = DirSource::new(dir.path()).unwrap();
        let templar = Templar::new();
        let dirs = role_dirs
            .iter()
            .map(|d| RepoPath::new(d).unwrap())
            .collect();
        Loader::new(&source, &templar)
            .with_role_dirs(dirs)
            .load(
                &RepoPath::new("site.yml").unwrap(),
                &crate::inventory::InventoryHost::implicit("h"),
            )
            .map_err(|e| e.to_string())
    }

    const TASK: &str = "- debug: msg=x\n";

    fn role_path(pb: &Playbook, i: usize) -> String {
        pb.plays[0].roles[i].path.to_string()
    }

    #[test]
    fn roles_are_found_in_collections_roles_path_and_beside_the_depending_role() {
        let pb = load(
            &[
                (
                    "site.yml",
                    "- hosts: all\n  collections: [acme.tools]\n  roles: [a.b.c, short, cfg]\n",
                ),
                (
                    "collections/ansible_collections/a/b/roles/c/tasks/main.yml",
                    TASK,
                ),
                (
                    "collections/ansible_collections/acme/tools/roles/short/tasks/main.yml",
                    TASK,
                ),
                ("galaxy/cfg/tasks/main.yml", TASK),
            ],
            &["galaxy"],
        )
        .unwrap();
        assert_eq!(
            role_path(&pb, 0),
            "collections/ansible_collections/a/b/roles/c"
        );
        assert_eq!(pb.plays[0].roles[0].name, "c");
        assert_eq!(
            role_path(&pb, 1),
            "collections/ansible_collections/acme/tools/roles/short"
        );
        assert_eq!(role_path(&pb, 2), "galaxy/cfg");
        // roles/ beside the playbook comes before roles_path.
        let pb = load(
            &[
                ("site.yml", "- hosts: all\n  roles: [cfg]\n"),
                ("roles/cfg/tasks/main.yml", TASK),
                ("galaxy/cfg/tasks/main.yml", TASK),
            ],
            &["galaxy"],
        )
        .unwrap();
        assert_eq!(role_path(&pb, 0), "roles/cfg");
        // A dependency next to the role that needs it (a roles_path directory).
        let pb = load(
            &[
                ("site.yml", "- hosts: all\n  roles: [top]\n"),
                ("galaxy/top/meta/main.yml", "dependencies: [sibling]\n"),
                ("galaxy/top/tasks/main.yml", TASK),
                ("galaxy/sibling/tasks/main.yml", TASK),
            ],
            &["galaxy"],
        )
        .unwrap();
        assert_eq!(role_path(&pb, 0), "galaxy/sibling");
        let e = load(&[("site.yml", "- hosts: all\n  roles: [x.y.z]\n")], &[]).unwrap_err();
        assert!(e.contains("role `x.y.z` not found"), "{e}");
    }

    #[test]
    fn a_role_and_its_dependencies_are_blocks_with_dedupe_keys() {
        let pb = load(
            &[
                ("site.yml", "- hosts: all\n  roles: [a, b]\n"),
                ("roles/a/meta/main.yml", "dependencies: [c]\n"),
                (
                    "roles/b/meta/main.yml",
                    "dependencies: [{role: c}]\nallow_duplicates: true\n",
                ),
                ("roles/a/tasks/main.yml", TASK),
                ("roles/b/tasks/main.yml", TASK),
                ("roles/c/tasks/main.yml", TASK),
            ],
            &[],
        )
        .unwrap();
        let keys = |i: usize| -> Vec<Option<String>> {
            let Item::Block(outer) = &pb.plays[0].tasks[i] else {
                panic!()
            };
            outer
                .block
                .iter()
                .map(|it| match it {
                    Item::Block(b) => match b.block.last() {
                        Some(Item::Block(inner)) if b.run_key.is_none() => inner.run_key.clone(),
                        _ => b.run_key.clone(),
                    },
                    Item::Task(_) => None,
                })
                .collect()
        };
        let (a, b) = (keys(0), keys(1));
        assert_eq!(a.len(), 2);
        assert_eq!(a[0], b[0], "the same dependency, the same key");
        assert!(a[1].is_some());
        assert!(b[1].is_none(), "allow_duplicates: no key");
    }
}
