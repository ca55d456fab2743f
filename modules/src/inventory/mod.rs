//! The inventory, as ansible-core builds it from ansible-pull's `-i`: the implicit `localhost,`
//! by default, or an INI or YAML inventory file of the repository. Only what this host needs
//! is kept: its name, its groups (in Ansible's variable order), `groups` and `group_names`.

use std::sync::Arc;

use indexmap::IndexMap;
use minijinja::Value;

use crate::error::{LoadError, Location};

mod ini;
pub mod pattern;
mod range;
mod yaml_inv;

/// Variables as written in the inventory.
pub type InvVars = IndexMap<String, Value>;

/// One group: its own hosts, child groups and variables.
#[derive(Debug, Clone, Default)]
pub struct Group {
    pub hosts: Vec<String>,
    pub children: Vec<String>,
    pub vars: InvVars,
}

/// A whole inventory: groups (`all` and `ungrouped` always there) and hosts with their inline
/// variables, both in the order they were first written.
#[derive(Debug, Clone)]
pub struct Inventory {
    /// The file it was read from (`None`: the implicit `NAME,` list).
    pub file: Option<String>,
    pub groups: IndexMap<String, Group>,
    pub hosts: IndexMap<String, InvVars>,
}

/// An inventory file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    #[error("{file}:{line}: {message}")]
    Parse {
        file: String,
        line: u32,
        message: String,
    },
    #[error("{file}: {message}")]
    File { file: String, message: String },
}

impl InventoryError {
    pub(crate) fn at(file: &str, line: u32, message: impl Into<String>) -> InventoryError {
        InventoryError::Parse {
            file: file.to_string(),
            line,
            message: message.into(),
        }
    }

    /// As a load error (file and line kept).
    pub fn to_load_error(&self) -> LoadError {
        match self {
            InventoryError::Parse {
                file,
                line,
                message,
            } => LoadError::at(Location::new(Arc::from(file.as_str()), *line), message),
            InventoryError::File { file, message } => LoadError::new(format!("{file}: {message}")),
        }
    }
}

impl Inventory {
    fn empty(file: Option<String>) -> Inventory {
        let mut groups = IndexMap::new();
        groups.insert("all".to_string(), Group::default());
        groups.insert("ungrouped".to_string(), Group::default());
        Inventory {
            file,
            groups,
            hosts: IndexMap::new(),
        }
    }

    /// ansible-pull's default, `-i NAME,`: one host in `ungrouped`.
    pub fn host_list(name: &str) -> Inventory {
        let mut inv = Inventory::empty(None);
        inv.add_host("ungrouped", name);
        inv.finish();
        inv
    }

    /// Parses an inventory file: YAML for `.yml`/`.yaml`/`.json`, else INI (as ansible-core
    /// tries its `yaml` and `ini` plugins).
    pub fn parse(file: &str, text: &str) -> Result<Inventory, InventoryError> {
        let lower = file.to_ascii_lowercase();
        let mut inv =
            if lower.ends_with(".yml") || lower.ends_with(".yaml") || lower.ends_with(".json") {
                yaml_inv::parse(file, text)?
            } else {
                ini::parse(file, text)?
            };
        inv.finish();
        Ok(inv)
    }

    pub(crate) fn group_mut(&mut self, name: &str) -> &mut Group {
        self.groups.entry(name.to_string()).or_default()
    }

    pub(crate) fn add_host(&mut self, group: &str, host: &str) {
        self.hosts.entry(host.to_string()).or_default();
        let g = self.group_mut(group);
        if !g.hosts.iter().any(|h| h == host) {
            g.hosts.push(host.to_string());
        }
    }

    pub(crate) fn add_child(&mut self, parent: &str, child: &str) {
        self.group_mut(child);
        let g = self.group_mut(parent);
        if !g.children.iter().any(|c| c == child) {
            g.children.push(child.to_string());
        }
    }

    /// As ansible-core's reconcile: every group is under `all`, a host in no group but `all`
    /// is in `ungrouped`, and `ungrouped` holds no host that has another group.
    fn finish(&mut self) {
        let top: Vec<String> = self
            .groups
            .keys()
            .filter(|g| *g != "all" && !self.is_child_of_other(g))
            .cloned()
            .collect();
        for g in top {
            self.add_child("all", &g);
        }
        let hosts: Vec<String> = self.hosts.keys().cloned().collect();
        for h in hosts {
            let in_some = self
                .groups
                .iter()
                .any(|(n, g)| n != "all" && n != "ungrouped" && g.hosts.contains(&h));
            let ungrouped = self.group_mut("ungrouped");
            if in_some {
                ungrouped.hosts.retain(|x| x != &h);
            } else if !ungrouped.hosts.contains(&h) {
                ungrouped.hosts.push(h);
            }
        }
    }

    fn is_child_of_other(&self, name: &str) -> bool {
        self.groups
            .iter()
            .any(|(n, g)| n != "all" && g.children.iter().any(|c| c == name))
    }

    /// Every host of a group, its children's too, in inventory order.
    pub fn hosts_of(&self, group: &str) -> Vec<String> {
        if group == "all" {
            return self.hosts.keys().cloned().collect();
        }
        let mut seen = Vec::new();
        let mut out: Vec<String> = Vec::new();
        self.collect_hosts(group, &mut seen, &mut out);
        // Ansible lists a group's hosts in inventory order.
        self.hosts
            .keys()
            .filter(|h| out.contains(h))
            .cloned()
            .collect()
    }

    fn collect_hosts(&self, group: &str, seen: &mut Vec<String>, out: &mut Vec<String>) {
        if seen.iter().any(|s| s == group) {
            return;
        }
        seen.push(group.to_string());
        if let Some(g) = self.groups.get(group) {
            out.extend(g.hosts.iter().cloned());
            for c in &g.children {
                self.collect_hosts(c, seen, out);
            }
        }
    }

    /// The groups `host` is in, directly or through a child group, `all` included.
    pub fn groups_of(&self, host: &str) -> Vec<String> {
        self.groups
            .keys()
            .filter(|g| self.hosts_of(g).iter().any(|h| h == host))
            .cloned()
            .collect()
    }

    /// A group's depth under `all` (the longest path), as ansible-core computes it.
    fn depth(&self, group: &str) -> usize {
        fn walk(inv: &Inventory, group: &str, d: usize, target: &str, best: &mut Option<usize>) {
            if d > inv.groups.len() {
                return; // a loop of children
            }
            if group == target {
                *best = Some(best.map_or(d, |b| b.max(d)));
            }
            if let Some(g) = inv.groups.get(group) {
                for c in &g.children {
                    walk(inv, c, d + 1, target, best);
                }
            }
        }
        let mut best = None;
        walk(self, "all", 0, group, &mut best);
        best.unwrap_or(1)
    }

    fn priority(&self, group: &str) -> i64 {
        self.groups
            .get(group)
            .and_then(|g| g.vars.get("ansible_group_priority"))
            .and_then(|v| {
                i64::try_from(v.clone())
                    .ok()
                    .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
            })
            .unwrap_or(1)
    }

    /// `host`'s groups other than `all`, in the order their variables apply (ansible-core's
    /// `sort_groups`: by depth, then `ansible_group_priority`, then name).
    pub fn var_groups(&self, host: &str) -> Vec<String> {
        let mut gs: Vec<String> = self
            .groups_of(host)
            .into_iter()
            .filter(|g| g != "all")
            .collect();
        gs.sort_by(|a, b| {
            (self.depth(a), self.priority(a), a.as_str()).cmp(&(
                self.depth(b),
                self.priority(b),
                b.as_str(),
            ))
        });
        gs
    }

    /// The host of this inventory this machine is, among `names` (most specific first: the
    /// FQDN, the node name, the short name, `localhost`), as ansible-pull's `--limit` finds
    /// it. More than one is an error: Ansible would run the playbook once for each.
    pub fn find_host(&self, names: &[String]) -> Result<String, String> {
        let mut found: Vec<&String> = Vec::new();
        for n in names {
            if let Some((h, _)) = self.hosts.get_key_value(n.as_str()) {
                if !found.contains(&h) {
                    found.push(h);
                }
            }
        }
        match found.as_slice() {
            [one] => Ok((*one).clone()),
            [] => Err(format!(
                "this host is not in the inventory (looked for {})",
                names.join(", ")
            )),
            many => {
                Err(format!(
                "several hosts of the inventory are this host ({}): ansible-pull would run the \
                 playbook once for each; name the one with --host-name",
                many.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
            ))
            }
        }
    }

    /// The `groups` magic variable: every group and its hosts.
    pub fn groups_value(&self) -> Value {
        crate::vars::map_value(self.groups.keys().map(|g| {
            let hosts: Vec<Value> = self.hosts_of(g).into_iter().map(Value::from).collect();
            (Value::from(g.as_str()), Value::from(hosts))
        }))
    }

    /// The `group_names` magic variable: `host`'s groups but `all`, sorted.
    pub fn group_names(&self, host: &str) -> Vec<String> {
        let mut gs: Vec<String> = self
            .groups_of(host)
            .into_iter()
            .filter(|g| g != "all")
            .collect();
        gs.sort();
        gs
    }
}

/// This host as the inventory sees it: what the loader and the engine need.
#[derive(Debug, Clone)]
pub struct InventoryHost {
    /// `inventory_hostname`.
    pub name: String,
    pub inventory: Arc<Inventory>,
}

impl InventoryHost {
    /// ansible-pull's default inventory `NAME,`.
    pub fn implicit(name: &str) -> InventoryHost {
        InventoryHost {
            name: name.to_string(),
            inventory: Arc::new(Inventory::host_list(name)),
        }
    }

    /// Whether a play's `hosts:` patterns select this host.
    pub fn matches(&self, patterns: &[String]) -> Result<bool, String> {
        pattern::matches(&self.inventory, &self.name, patterns)
    }
}

#[cfg(test)]
mod tests;
