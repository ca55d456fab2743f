//! Ansible's magic variables that stay the same for a whole run or a whole play
//! (`ansible_version`, `groups`, `group_names`, `inventory_file`, `ansible_run_tags`,
//! `ansible_play_hosts`, `ansible_play_role_names`...). Per-task ones (`role_name`,
//! `role_path`, `ansible_loop_var`) are set by the engine; `hostvars` by [`crate::vars::Scope`].

use minijinja::Value;

use crate::inventory::InventoryHost;
use crate::playbook::{Play, RawVars};

/// The ansible-core release whose behaviour the agent mirrors (`ansible_version`).
pub const ANSIBLE_VERSION: (u32, u32, u32) = (2, 19, 14);

/// What a run's magic variables are computed from.
pub struct RunContext<'a> {
    pub host: &'a InventoryHost,
    /// Where the repository is (`playbook_dir` is under it), for `inventory_dir`/`_file`.
    pub root: &'a str,
    pub tags: &'a [String],
    pub skip_tags: &'a [String],
    /// The repository's ansible.cfg, as a path on this host, if there is one.
    pub config_file: Option<&'a str>,
    /// ansible.cfg's `ansible_managed`, or Ansible's default.
    pub ansible_managed: &'a str,
}

/// The variables that hold for the whole run.
pub fn run_vars(cx: &RunContext<'_>) -> RawVars {
    let (major, minor, revision) = ANSIBLE_VERSION;
    let full = format!("{major}.{minor}.{revision}");
    let mut m = RawVars::new();
    m.insert(
        "ansible_version".into(),
        crate::vars::map_value([
            ("full", Value::from(full.as_str())),
            ("major", Value::from(major)),
            ("minor", Value::from(minor)),
            ("revision", Value::from(revision)),
            ("string", Value::from(full.as_str())),
        ]),
    );
    let inv = &cx.host.inventory;
    m.insert("groups".into(), inv.groups_value());
    m.insert(
        "group_names".into(),
        Value::from(
            inv.group_names(&cx.host.name)
                .into_iter()
                .map(Value::from)
                .collect::<Vec<_>>(),
        ),
    );
    let (dir, file) = match &inv.file {
        // ansible-core's values for a host list (`-i localhost,`): the text "None" and the list.
        None => ("None".to_string(), format!("{},", cx.host.name)),
        Some(f) => {
            let full = format!("{}/{}", cx.root.trim_end_matches('/'), f);
            let dir = match full.rfind('/') {
                Some(0) => "/".to_string(),
                Some(i) => full[..i].to_string(),
                None => ".".to_string(),
            };
            (dir, full)
        }
    };
    m.insert("inventory_dir".into(), Value::from(dir));
    m.insert("inventory_file".into(), Value::from(file));
    let list = |v: &[String]| {
        Value::from(
            v.iter()
                .map(|s| Value::from(s.as_str()))
                .collect::<Vec<_>>(),
        )
    };
    let run_tags = if cx.tags.is_empty() {
        vec!["all".to_string()]
    } else {
        cx.tags.to_vec()
    };
    m.insert("ansible_run_tags".into(), list(&run_tags));
    m.insert("ansible_skip_tags".into(), list(cx.skip_tags));
    m.insert(
        "ansible_config_file".into(),
        cx.config_file.map_or(Value::from(()), Value::from),
    );
    // Ansible defines it only while rendering a `template`; here it is defined everywhere.
    m.insert("ansible_managed".into(), Value::from(cx.ansible_managed));
    // The agent runs every task on this host, as `ansible-playbook -c local` (whose play
    // context defines it for each task).
    m.insert("ansible_connection".into(), Value::from("local"));
    // One host per run: the play's hosts are this one.
    let me = list(std::slice::from_ref(&cx.host.name));
    for k in [
        "ansible_play_hosts",
        "ansible_play_hosts_all",
        "ansible_play_batch",
        "play_hosts",
    ] {
        m.insert(k.into(), me.clone());
    }
    m
}

/// The variables that hold for one play.
pub fn play_vars(play: &Play) -> RawVars {
    let mut names: Vec<Value> = Vec::new();
    for r in &play.roles {
        let v = Value::from(r.name.as_str());
        if !names.contains(&v) {
            names.push(v);
        }
    }
    let mut m = RawVars::new();
    m.insert("ansible_play_role_names".into(), Value::from(names.clone()));
    m.insert("ansible_role_names".into(), Value::from(names));
    m
}
