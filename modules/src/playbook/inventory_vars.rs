//! `group_vars/` and `host_vars/` as ansible-core's `host_group_vars` plugin reads them, and
//! the inventory's own variables, merged in Ansible's order into the two layers the engine
//! uses (group variables below host variables).
//!
//! Order (lowest first): the inventory's `all` vars, its other groups' vars; then
//! `group_vars/all` beside the inventory and beside the playbook; then each group's
//! `group_vars/<group>` (beside the inventory, then beside the playbook), the groups sorted
//! by depth, `ansible_group_priority` and name. Host: inline inventory vars, then
//! `host_vars/<name>` beside the inventory and beside the playbook.
//!
//! For one entity, the first of `NAME`, `NAME.yml`, `NAME.yaml`, `NAME.json` that exists is
//! read; a directory gives all its files (sorted, recursively; hidden ones, backups `~` and
//! other extensions left out).

use super::*;
use crate::inventory::InventoryHost;
use crate::source::SourceKind;

const EXTENSIONS: [&str; 4] = ["", ".yml", ".yaml", ".json"];

impl Loader<'_> {
    /// The group and host variable layers for `host`.
    pub(super) fn inventory_vars(&mut self, host: &InventoryHost) -> (RawVars, RawVars) {
        let inv = &host.inventory;
        let mut dirs = Vec::with_capacity(2);
        if let Some(f) = &inv.file {
            if let Ok(p) = RepoPath::new(f) {
                dirs.push(p.parent());
            }
        }
        if !dirs.contains(&self.base) {
            dirs.push(self.base.clone());
        }
        let groups = inv.var_groups(&host.name);
        let mut group_vars = RawVars::new();
        let put = |out: &mut RawVars, vars: &IndexMap<String, Value>, merge: bool| {
            for (k, v) in vars {
                let v = match (merge, out.get(k)) {
                    (true, Some(old)) => crate::vars::merge_hash(old, v),
                    _ => v.clone(),
                };
                out.insert(k.clone(), v);
            }
        };
        let merge = self.hash_merge;
        if let Some(all) = inv.groups.get("all") {
            put(&mut group_vars, &all.vars, merge);
        }
        for g in &groups {
            if let Some(gr) = inv.groups.get(g) {
                put(&mut group_vars, &gr.vars, merge);
            }
        }
        for entity in std::iter::once("all").chain(groups.iter().map(String::as_str)) {
            for dir in &dirs {
                let vars = self.entity_vars(dir, "group_vars", entity);
                put(&mut group_vars, &vars, merge);
            }
        }
        let mut host_vars = RawVars::new();
        if let Some(hv) = inv.hosts.get(&host.name) {
            put(&mut host_vars, hv, merge);
        }
        for dir in &dirs {
            let vars = self.entity_vars(dir, "host_vars", &host.name);
            put(&mut host_vars, &vars, merge);
        }
        (group_vars, host_vars)
    }

    /// Whether a play's `hosts` select this host; a pattern Ansible would evaluate otherwise
    /// (a template, the implicit localhost beside an inventory) is an error at `hosts`.
    pub(super) fn runs_here(
        &mut self,
        hosts: &[String],
        node: Option<&crate::yaml::Node>,
        file: &Arc<str>,
    ) -> bool {
        let Some(host) = &self.host else {
            return true;
        };
        let line = node.map_or(0, |n| n.line);
        let fail =
            |msg: String| LoadError::at(Location::new(file.clone(), line), msg).with_key("hosts");
        if hosts.iter().any(|h| Templar::is_template(h)) {
            self.errors
                .push(fail("templated `hosts` patterns are not supported".into()));
            return false;
        }
        match host.matches(hosts) {
            Ok(yes) => yes,
            Err(msg) => {
                self.errors.push(fail(msg));
                false
            }
        }
    }

    /// The variables of `dir/kind/name` (file or directory), empty when there is none.
    fn entity_vars(&mut self, dir: &RepoPath, kind: &str, name: &str) -> RawVars {
        let mut out = RawVars::new();
        for ext in EXTENSIONS {
            let Ok(path) = dir.join(&format!("{kind}/{name}{ext}")) else {
                return out;
            };
            match self.source.kind(&path) {
                Ok(Some(SourceKind::File)) => {
                    out.extend(self.vars_file(&path, None));
                    return out;
                }
                Ok(Some(SourceKind::Dir)) => {
                    for file in self.dir_files(&path) {
                        let vars = self.vars_file(&file, None);
                        for (k, v) in vars {
                            let v = match (self.hash_merge, out.get(&k)) {
                                (true, Some(old)) => crate::vars::merge_hash(old, &v),
                                _ => v,
                            };
                            out.insert(k, v);
                        }
                    }
                    return out;
                }
                Ok(None) => {}
                Err(e) => {
                    self.errors.push(LoadError::new(e.to_string()));
                    return out;
                }
            }
        }
        out
    }

    /// The variable files under a `group_vars/NAME/` directory, sorted, recursively.
    fn dir_files(&mut self, dir: &RepoPath) -> Vec<RepoPath> {
        let entries = match self.source.list(dir) {
            Ok(e) => e,
            Err(e) => {
                self.errors.push(LoadError::new(e.to_string()));
                return Vec::new();
            }
        };
        let mut out = Vec::new();
        for e in entries {
            if e.name.starts_with('.') || e.name.ends_with('~') {
                continue;
            }
            let Ok(path) = dir.join(&e.name) else {
                continue;
            };
            match e.kind {
                SourceKind::Dir => out.extend(self.dir_files(&path)),
                SourceKind::File => {
                    let ext = match e.name.rfind('.') {
                        Some(i) if i > 0 => &e.name[i..],
                        _ => "",
                    };
                    if EXTENSIONS.contains(&ext) {
                        out.push(path);
                    }
                }
            }
        }
        out
    }
}
