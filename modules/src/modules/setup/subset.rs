//! `gather_subset` as ansible-core 2.19 resolves it on Linux: the names (collectors, their
//! aliases, their fact ids) selected by `all`, `min`, `!name`..., then the collectors they
//! require. Tables copied from `module_utils/facts` (Linux and Generic collectors).

use std::collections::BTreeSet;

/// A fact collector: its name, the fact ids that name it too, the collectors it needs.
struct Collector {
    name: &'static str,
    fact_ids: &'static [&'static str],
    requires: &'static [&'static str],
}

const fn c(
    name: &'static str,
    fact_ids: &'static [&'static str],
    requires: &'static [&'static str],
) -> Collector {
    Collector {
        name,
        fact_ids,
        requires,
    }
}

static COLLECTORS: &[Collector] = &[
    c(
        "distribution",
        &[
            "distribution_major_version",
            "distribution_release",
            "distribution_version",
            "os_family",
        ],
        &[],
    ),
    c(
        "hardware",
        &[
            "devices",
            "mounts",
            "processor",
            "processor_cores",
            "processor_count",
        ],
        &["platform"],
    ),
    c("loadavg", &[], &[]),
    c("pkg_mgr", &[], &["distribution"]),
    c("python", &[], &[]),
    c("selinux", &[], &[]),
    c("lsb", &[], &[]),
    c("apparmor", &[], &[]),
    c("chroot", &["is_chroot"], &[]),
    c("date_time", &[], &[]),
    c("ohai", &[], &[]),
    c(
        "virtual",
        &[
            "virtualization_role",
            "virtualization_tech_guest",
            "virtualization_tech_host",
            "virtualization_type",
        ],
        &[],
    ),
    c("nvme", &[], &[]),
    c("dns", &[], &[]),
    c("env", &[], &[]),
    c(
        "caps",
        &["system_capabilities", "system_capabilities_enforced"],
        &[],
    ),
    c("local", &[], &[]),
    c("facter", &["facter"], &[]),
    c(
        "platform",
        &[
            "architecture",
            "kernel",
            "kernel_version",
            "machine",
            "machine_id",
            "python_version",
            "system",
        ],
        &[],
    ),
    c("systemd", &[], &[]),
    c("cmdline", &[], &[]),
    c("iscsi", &[], &[]),
    c("fips", &[], &[]),
    c(
        "ssh_pub_keys",
        &[
            "ssh_host_key_dsa_public",
            "ssh_host_key_ecdsa_public",
            "ssh_host_key_ed25519_public",
            "ssh_host_key_rsa_public",
            "ssh_host_pub_keys",
        ],
        &[],
    ),
    c(
        "network",
        &[
            "all_ipv4_addresses",
            "all_ipv6_addresses",
            "default_ipv4",
            "default_ipv6",
            "interfaces",
        ],
        &["distribution", "platform"],
    ),
    c("fibre_channel_wwn", &[], &[]),
    c("service_mgr", &[], &["distribution", "platform"]),
    c(
        "user",
        &[
            "effective_group_ids",
            "effective_user_id",
            "real_user_id",
            "user_dir",
            "user_gecos",
            "user_gid",
            "user_id",
            "user_shell",
            "user_uid",
        ],
        &[],
    ),
];

/// setup's `minimal_gather_subset`.
const MINIMAL: &[&str] = &[
    "apparmor",
    "caps",
    "cmdline",
    "date_time",
    "distribution",
    "dns",
    "env",
    "fips",
    "local",
    "lsb",
    "pkg_mgr",
    "platform",
    "python",
    "selinux",
    "service_mgr",
    "ssh_pub_keys",
    "user",
];

/// The collector a name (collector name or fact id) selects.
fn collector_of(name: &str) -> Option<&'static Collector> {
    COLLECTORS
        .iter()
        .find(|c| c.name == name || c.fact_ids.contains(&name))
}

fn valid_subsets() -> BTreeSet<&'static str> {
    COLLECTORS
        .iter()
        .flat_map(|c| std::iter::once(c.name).chain(c.fact_ids.iter().copied()))
        .collect()
}

/// The collectors `gather_subset` selects (`get_collector_names` then `_solve_deps`), or
/// Ansible's error for a bad subset.
pub(super) fn collectors(gather_subset: &[String]) -> Result<BTreeSet<&'static str>, String> {
    let valid = valid_subsets();
    let minimal: BTreeSet<&str> = MINIMAL.iter().copied().collect();
    let mut added: BTreeSet<String> = BTreeSet::new();
    let mut excluded: BTreeSet<String> = BTreeSet::new();
    let mut explicit: BTreeSet<String> = BTreeSet::new();
    let spec = if gather_subset.is_empty() {
        vec!["all".to_string()]
    } else {
        gather_subset.to_vec()
    };
    for subset in std::iter::once("min".to_string()).chain(spec) {
        match subset.as_str() {
            "min" => added.extend(minimal.iter().map(|s| s.to_string())),
            "all" => added.extend(valid.iter().map(|s| s.to_string())),
            _ => {
                if let Some(name) = subset.strip_prefix('!') {
                    match name {
                        "min" => excluded.extend(minimal.iter().map(|s| s.to_string())),
                        "all" => excluded.extend(valid.difference(&minimal).map(|s| s.to_string())),
                        _ => {
                            if let Some(c) = COLLECTORS.iter().find(|c| c.name == name) {
                                excluded.extend(c.fact_ids.iter().map(|s| s.to_string()));
                            }
                            excluded.insert(name.to_string());
                        }
                    }
                } else {
                    if !valid.contains(subset.as_str()) {
                        return Err(format!(
                            "Bad subset '{subset}' given to Ansible. gather_subset options \
                             allowed: all, {}",
                            valid.iter().copied().collect::<Vec<_>>().join(", ")
                        ));
                    }
                    explicit.insert(subset.clone());
                    added.insert(subset);
                }
            }
        }
    }
    if added.is_empty() {
        added.extend(valid.iter().map(|s| s.to_string()));
    }
    let drop: BTreeSet<String> = excluded.difference(&explicit).cloned().collect();
    let names: BTreeSet<String> = added.difference(&drop).cloned().collect();
    let mut chosen: BTreeSet<&'static str> = names
        .iter()
        .filter_map(|n| collector_of(n))
        .map(|c| c.name)
        .collect();
    // `_solve_deps`: the collectors the chosen ones require, transitively.
    loop {
        let more: Vec<&'static str> = chosen
            .iter()
            .filter_map(|n| collector_of(n))
            .flat_map(|c| c.requires.iter().copied())
            .filter(|r| !chosen.contains(r))
            .collect();
        if more.is_empty() {
            break;
        }
        chosen.extend(more);
    }
    Ok(chosen)
}

/// The collector that gives one of the agent's facts (its unprefixed name); an interface's
/// own fact (`eth0`) comes from `network`.
pub(super) fn collector_of_fact(fact: &str) -> &'static str {
    match fact {
        "hostname" | "nodename" | "fqdn" | "domain" | "system" | "kernel" | "kernel_version"
        | "machine" | "architecture" | "machine_id" | "python_version" => "platform",
        "distribution"
        | "distribution_version"
        | "distribution_major_version"
        | "distribution_release"
        | "os_family" => "distribution",
        "processor_vcpus"
        | "processor_count"
        | "processor_cores"
        | "processor_threads_per_core"
        | "memtotal_mb"
        | "memfree_mb"
        | "memory_mb"
        | "mounts" => "hardware",
        "virtualization_type" | "virtualization_role" => "virtual",
        "pkg_mgr" => "pkg_mgr",
        "service_mgr" => "service_mgr",
        "python" => "python",
        "date_time" => "date_time",
        "env" => "env",
        "dns" => "dns",
        "selinux" => "selinux",
        "lsb" => "lsb",
        "local" => "local",
        "user_id" | "user_uid" | "user_gid" | "user_dir" | "user_shell" => "user",
        _ => "network",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(spec: &[&str]) -> Vec<&'static str> {
        let spec: Vec<String> = spec.iter().map(|s| s.to_string()).collect();
        collectors(&spec).unwrap().into_iter().collect()
    }

    #[test]
    fn subsets_resolve_as_ansible() {
        assert_eq!(names(&["all"]).len(), COLLECTORS.len());
        assert_eq!(names(&["!all"]), {
            let mut m = MINIMAL.to_vec();
            m.sort();
            m
        });
        assert_eq!(
            names(&["!all", "!min", "network"]),
            vec!["distribution", "network", "platform"]
        );
        assert_eq!(names(&["!all", "!min", "os_family"]), vec!["distribution"]);
        assert!(!names(&["all", "!hardware"]).contains(&"hardware"));
        // a required collector comes back even when excluded
        assert!(names(&["!all", "!min", "!platform", "hardware"]).contains(&"platform"));
        let e = collectors(&["bogus".to_string()]).unwrap_err();
        assert!(e.starts_with("Bad subset 'bogus' given to Ansible."), "{e}");
    }

    #[test]
    fn every_fact_has_a_collector() {
        for key in crate::facts::Facts::gather().map.keys() {
            let c = collector_of_fact(key);
            assert!(collector_of(c).is_some(), "{key} -> {c}");
        }
    }
}
