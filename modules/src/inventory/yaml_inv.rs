//! ansible-core's `yaml` inventory plugin: top-level groups (usually `all`), each with
//! `hosts:` (name → variables, names may hold ranges), `vars:` and `children:` (nested
//! groups). Any other key is refused (Ansible only warns and skips it: nothing silent here).

use std::sync::Arc;

use crate::yaml::{Node, NodeKind};

use super::range;
use super::{Inventory, InventoryError};

pub fn parse(file: &str, text: &str) -> Result<Inventory, InventoryError> {
    let name: Arc<str> = Arc::from(file);
    let root = crate::yaml::parse(&name, text).map_err(|e| match e.location {
        Some(loc) => InventoryError::at(file, loc.line, e.message),
        None => InventoryError::File {
            file: file.to_string(),
            message: e.message,
        },
    })?;
    let mut inv = Inventory::empty(Some(file.to_string()));
    match &root.kind {
        NodeKind::Map(entries) => {
            for e in entries {
                group(&mut inv, file, &e.key, e.key_line, &e.value)?;
            }
        }
        NodeKind::Null => {}
        _ => {
            return Err(InventoryError::at(
                file,
                root.line,
                format!(
                    "a YAML inventory must be a mapping of groups, not {}",
                    root.type_name()
                ),
            ))
        }
    }
    Ok(inv)
}

fn group(
    inv: &mut Inventory,
    file: &str,
    name: &str,
    line: u32,
    node: &Node,
) -> Result<(), InventoryError> {
    inv.group_mut(name);
    let entries = match &node.kind {
        NodeKind::Map(entries) => entries,
        NodeKind::Null => return Ok(()),
        _ => {
            return Err(InventoryError::at(
                file,
                line,
                format!("group `{name}` must be a mapping, not {}", node.type_name()),
            ))
        }
    };
    for e in entries {
        match e.key.as_str() {
            "vars" => {
                for (k, v) in mapping(file, &e.value, &format!("`vars` of group `{name}`"))? {
                    inv.group_mut(name).vars.insert(k, v);
                }
            }
            "hosts" => {
                let hosts = match &e.value.kind {
                    NodeKind::Map(hosts) => hosts,
                    NodeKind::Null => continue,
                    _ => {
                        return Err(InventoryError::at(
                            file,
                            e.value.line,
                            format!(
                                "`hosts` of group `{name}` must be a mapping of host names, not {}",
                                e.value.type_name()
                            ),
                        ))
                    }
                };
                for h in hosts {
                    let vars = mapping(file, &h.value, &format!("host `{}`", h.key))?;
                    let names = range::expand(&h.key)
                        .map_err(|m| InventoryError::at(file, h.key_line, m))?;
                    for host in names {
                        inv.add_host(name, &host);
                        if let Some(hv) = inv.hosts.get_mut(&host) {
                            for (k, v) in &vars {
                                hv.insert(k.clone(), v.clone());
                            }
                        }
                    }
                }
            }
            "children" => match &e.value.kind {
                NodeKind::Map(children) => {
                    for c in children {
                        inv.add_child(name, &c.key);
                        group(inv, file, &c.key, c.key_line, &c.value)?;
                    }
                }
                NodeKind::Null => {}
                _ => {
                    return Err(InventoryError::at(
                        file,
                        e.value.line,
                        format!(
                            "`children` of group `{name}` must be a mapping of groups, not {}",
                            e.value.type_name()
                        ),
                    ))
                }
            },
            other => {
                return Err(InventoryError::at(
                    file,
                    e.key_line,
                    format!(
                        "unknown key `{other}` in group `{name}` (a group has `hosts`, `vars` and \
                         `children`)"
                    ),
                ))
            }
        }
    }
    Ok(())
}

fn mapping(
    file: &str,
    node: &Node,
    what: &str,
) -> Result<Vec<(String, minijinja::Value)>, InventoryError> {
    match &node.kind {
        NodeKind::Map(entries) => Ok(entries
            .iter()
            .map(|e| (e.key.clone(), e.value.to_value()))
            .collect()),
        NodeKind::Null => Ok(Vec::new()),
        _ => Err(InventoryError::at(
            file,
            node.line,
            format!("{what} must be a mapping, not {}", node.type_name()),
        )),
    }
}
