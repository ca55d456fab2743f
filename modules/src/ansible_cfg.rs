//! The repository's `ansible.cfg` (at its top, where ansible-pull runs the playbook from).
//!
//! Settings that change what a playbook means are honoured (`inventory`, `roles_path`,
//! `hash_behaviour`, `ansible_managed`) or, when the agent does not implement them, refused
//! with file, line and key (`vault_password_file`, `error_on_undefined_vars = False`,
//! `force_handlers = True`, `[tags]`, `[diff] always = True`...). Connection and display
//! settings are accepted and mean nothing here (see docs/language/inventory.md). Unknown keys
//! of `[defaults]` are refused: Ansible ignores a misspelt key, the agent names it.
//! `ANSIBLE_*` environment variables and other ansible.cfg files are not read.

use std::sync::Arc;

use crate::error::{LoadError, LoadErrors, Location};
use crate::source::{RepoPath, Source};

/// The file name, at the top of the repository.
pub const FILE: &str = "ansible.cfg";

/// Ansible's default `ansible_managed` text (ansible-core 2.19).
pub const DEFAULT_MANAGED: &str = "Ansible managed";

/// A parsed, checked ansible.cfg.
#[derive(Debug, Clone, Default)]
pub struct AnsibleCfg {
    /// `[defaults] inventory`, repository-relative (`None`: not set).
    pub inventory: Option<String>,
    roles_path: Vec<String>,
    /// `[defaults] hash_behaviour = merge`.
    pub hash_merge: bool,
    /// `[defaults] ansible_managed`.
    pub ansible_managed: Option<String>,
}

/// One `key = value` as read.
#[derive(Debug, Clone)]
struct Setting {
    section: String,
    key: String,
    value: String,
    line: u32,
}

/// What the agent does with a setting.
enum Treatment {
    Honoured,
    /// Accepted, means nothing for a local run (documented).
    NoOp,
    /// Accepted only with these values (case-insensitive); any other is refused with the reason.
    Only(&'static [&'static str], &'static str),
    Refused(&'static str),
}

const FALSE: &[&str] = &["false", "no", "off", "0", "n", "f"];
const TRUE_OR_FALSE: &[&str] = &[
    "true", "yes", "on", "1", "y", "t", "false", "no", "off", "0", "n", "f",
];

fn defaults_key(key: &str) -> Option<Treatment> {
    use Treatment::*;
    Some(match key {
        "inventory" | "hostfile" | "roles_path" | "hash_behaviour" | "ansible_managed" => Honoured,
        "vault_password_file"
        | "vault_identity_list"
        | "vault_identity"
        | "ask_vault_pass"
        | "vault_encrypt_identity"
        | "vault_id_match" => Refused("Ansible Vault is not supported yet"),
        "error_on_undefined_vars" => Only(
            &["true", "yes", "on", "1", "y", "t"],
            "undefined variables are always errors here",
        ),
        "force_handlers" => Only(FALSE, "force_handlers is not supported"),
        "private_role_vars" => Only(FALSE, "private role variables are not supported"),
        "gathering" => Only(
            &["implicit", "smart"],
            "`gathering = explicit` is not supported (set `gather_facts: false` on plays)",
        ),
        "jinja2_extensions" => Refused("Jinja2 extensions are not supported"),
        "become_user" => Only(&["root"], "only become_user root is supported"),
        "jinja2_native"
        | "any_errors_fatal"
        | "display_skipped_hosts"
        | "display_ok_hosts"
        | "become"
        | "become_ask_pass"
        | "ask_pass"
        | "fact_caching_timeout"
        | "show_custom_stats"
        | "display_args_to_stdout"
        | "check_mode_markers"
        | "duplicate_dict_key"
        | "allow_unsafe_lookups" => Only(TRUE_OR_FALSE, "expects a boolean"),
        "host_key_checking"
        | "retry_files_enabled"
        | "retry_files_save_path"
        | "forks"
        | "stdout_callback"
        | "nocows"
        | "cow_selection"
        | "cowpath"
        | "nocolor"
        | "force_color"
        | "timeout"
        | "remote_user"
        | "remote_port"
        | "log_path"
        | "interpreter_python"
        | "interpreter_python_fallback"
        | "deprecation_warnings"
        | "callbacks_enabled"
        | "callback_whitelist"
        | "callback_enabled"
        | "command_warnings"
        | "system_warnings"
        | "localhost_warning"
        | "action_warnings"
        | "bin_ansible_callbacks"
        | "fact_caching"
        | "fact_caching_connection"
        | "fact_caching_prefix"
        | "gather_subset"
        | "gather_timeout"
        | "poll_interval"
        | "internal_poll_interval"
        | "local_tmp"
        | "remote_tmp"
        | "private_key_file"
        | "transport"
        | "connection"
        | "strategy"
        | "max_diff_size"
        | "executable"
        | "allow_world_readable_tmpfiles"
        | "verbosity"
        | "pipelining"
        | "module_name"
        | "module_compression"
        | "become_method"
        | "become_exe"
        | "become_flags"
        | "collections_path"
        | "collections_paths"
        | "collections_scan_sys_path"
        | "collections_on_ansible_version_mismatch"
        | "library"
        | "module_utils"
        | "action_plugins"
        | "cache_plugins"
        | "callback_plugins"
        | "connection_plugins"
        | "filter_plugins"
        | "lookup_plugins"
        | "inventory_plugins"
        | "vars_plugins"
        | "strategy_plugins"
        | "test_plugins"
        | "terminal_plugins"
        | "doc_fragment_plugins"
        | "cliconf_plugins"
        | "httpapi_plugins"
        | "netconf_plugins"
        | "become_plugins"
        | "playbook_vars_root"
        | "no_target_syslog"
        | "syslog_facility"
        | "no_log"
        | "invalid_task_attribute_failed"
        | "task_timeout"
        | "task_debugger_ignore_errors"
        | "enable_task_debugger"
        | "home"
        | "var_compression_level"
        | "stdout_callback_plugins"
        | "display_failed_stderr"
        | "show_per_host_start"
        | "show_task_path_on_failure"
        | "roles"
        | "facts_modules"
        | "interpreter_python_distro_map"
        | "ansible_home" => NoOp,
        _ => return None,
    })
}

fn section_key(section: &str, key: &str) -> Option<Treatment> {
    use Treatment::*;
    match section {
        "defaults" => defaults_key(key),
        "privilege_escalation" => Some(match key {
            "become_user" => Only(&["root"], "only become_user root is supported"),
            _ => NoOp,
        }),
        "diff" => Some(match key {
            "always" => Only(
                FALSE,
                "`[diff] always = True` is not supported: pass --diff",
            ),
            _ => NoOp,
        }),
        "tags" => Some(Refused(
            "default tags from ansible.cfg are not supported: pass --tags/--skip-tags",
        )),
        "inventory" => Some(match key {
            "enable_plugins"
            | "ignore_extensions"
            | "ignore_patterns"
            | "unparsed_is_failed"
            | "any_unparsed_is_failed"
            | "host_pattern_mismatch"
            | "cache"
            | "cache_plugin"
            | "cache_timeout"
            | "cache_connection"
            | "cache_prefix" => NoOp,
            _ => return None,
        }),
        // Connection, display and tooling sections: nothing in them changes a local run.
        _ => Some(NoOp),
    }
}

/// Python's configparser, as Ansible reads ansible.cfg: `[section]`, `key = value` or
/// `key: value` (keys lowercased), `#`/`;` comment lines, `;` inline comments after a space,
/// indented continuation lines.
fn parse_ini(file: &Arc<str>, text: &str) -> Result<Vec<Setting>, LoadError> {
    let mut out: Vec<Setting> = Vec::new();
    let mut section: Option<String> = None;
    let at = |line: u32, msg: String| LoadError::at(Location::new(file.clone(), line), msg);
    for (i, raw) in text.lines().enumerate() {
        let line = i as u32 + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with(';') {
            continue;
        }
        let value_part = match trimmed.find(" ;") {
            Some(p) => trimmed[..p].trim_end(),
            None => trimmed,
        };
        if raw.starts_with([' ', '\t']) {
            if let Some(last) = out
                .last_mut()
                .filter(|s| Some(&s.section) == section.as_ref())
            {
                last.value.push('\n');
                last.value.push_str(value_part);
                continue;
            }
        }
        if let Some(name) = trimmed.strip_prefix('[') {
            let Some(name) = name.strip_suffix(']') else {
                return Err(at(line, format!("invalid section header `{trimmed}`")));
            };
            section = Some(name.trim().to_string());
            continue;
        }
        let Some(sec) = &section else {
            return Err(at(line, "a setting before any [section]".into()));
        };
        let Some(pos) = value_part.find(['=', ':']) else {
            return Err(at(line, format!("expected `key = value`, got `{trimmed}`")));
        };
        let key = value_part[..pos].trim().to_ascii_lowercase();
        let value = value_part[pos + 1..].trim().to_string();
        if let Some(prev) = out.iter().find(|s| &s.section == sec && s.key == key) {
            return Err(at(
                line,
                format!(
                    "option `{key}` in section [{sec}] already exists (line {})",
                    prev.line
                ),
            )
            .with_key(key));
        }
        out.push(Setting {
            section: sec.clone(),
            key,
            value,
            line,
        });
    }
    Ok(out)
}

impl AnsibleCfg {
    /// Reads `ansible.cfg` at the top of `source`; `None` when there is none.
    pub fn load(source: &dyn Source) -> Result<Option<AnsibleCfg>, LoadErrors> {
        let path = RepoPath::new(FILE).map_err(|e| LoadErrors::from(LoadError::new(e.0)))?;
        let Some(bytes) = source
            .read(&path)
            .map_err(|e| LoadErrors::from(LoadError::new(e.to_string())))?
        else {
            return Ok(None);
        };
        let text = String::from_utf8(bytes)
            .map_err(|_| LoadErrors::from(LoadError::new(format!("{FILE}: not UTF-8 text"))))?;
        AnsibleCfg::parse(&text).map(Some)
    }

    /// Parses and checks the text of ansible.cfg; every refused setting is reported.
    pub fn parse(text: &str) -> Result<AnsibleCfg, LoadErrors> {
        let file: Arc<str> = Arc::from(FILE);
        let settings = parse_ini(&file, text)?;
        let mut cfg = AnsibleCfg::default();
        let mut errors = Vec::new();
        for s in &settings {
            let err = |msg: String| {
                LoadError::at(Location::new(file.clone(), s.line), msg)
                    .with_key(format!("{}.{}", s.section, s.key))
            };
            match section_key(&s.section, &s.key) {
                None => errors.push(err(format!(
                    "unknown setting `{}` in [{}] (the agent refuses what it does not know; \
                     see docs/language/inventory.md)",
                    s.key, s.section
                ))),
                Some(Treatment::NoOp) => {}
                Some(Treatment::Refused(why)) => errors.push(err(why.to_string())),
                Some(Treatment::Only(allowed, why)) => {
                    if !allowed.contains(&s.value.to_ascii_lowercase().as_str()) {
                        errors.push(err(format!("`{} = {}`: {why}", s.key, s.value)));
                    }
                }
                Some(Treatment::Honoured) => {
                    if let Err(msg) = cfg.honour(&s.key, &s.value) {
                        errors.push(err(msg));
                    }
                }
            }
        }
        if errors.is_empty() {
            Ok(cfg)
        } else {
            Err(LoadErrors(errors))
        }
    }

    fn honour(&mut self, key: &str, value: &str) -> Result<(), String> {
        match key {
            "inventory" | "hostfile" => {
                let v = value.trim();
                if v.contains(',') {
                    return Err(format!(
                        "`inventory = {v}`: a list of hosts or of sources is not supported (name \
                         one inventory file of the repository)"
                    ));
                }
                self.inventory = Some(repo_relative(v).ok_or_else(|| {
                    format!("`inventory = {v}`: must be a file inside the repository")
                })?);
            }
            "roles_path" => {
                // Directories outside the repository cannot hold the playbook's roles: a role
                // only there is "not found" when loaded.
                self.roles_path = value
                    .split(':')
                    .filter_map(|p| repo_relative(p.trim()))
                    .collect();
            }
            "hash_behaviour" => match value.trim().to_ascii_lowercase().as_str() {
                "replace" => self.hash_merge = false,
                "merge" => self.hash_merge = true,
                other => return Err(format!("`hash_behaviour = {other}`: replace or merge")),
            },
            "ansible_managed" => self.ansible_managed = Some(value.to_string()),
            _ => {}
        }
        Ok(())
    }

    /// `[defaults] roles_path` entries inside the repository, relative to its top, in order
    /// (for the loader's role search, before `roles/` beside the playbook).
    pub fn roles_path(&self) -> &[String] {
        &self.roles_path
    }

    /// The text of the `ansible_managed` variable.
    pub fn ansible_managed(&self) -> &str {
        self.ansible_managed.as_deref().unwrap_or(DEFAULT_MANAGED)
    }
}

/// A path of ansible.cfg (relative to the repository's top, where the file is) as a
/// repository path; `None` when it leaves the repository or is absolute.
fn repo_relative(p: &str) -> Option<String> {
    let p = p.strip_prefix("./").unwrap_or(p);
    if p.is_empty() || p.starts_with('/') || p.starts_with('~') || p.contains('$') {
        return None;
    }
    RepoPath::new(p).ok().map(|r| r.as_str().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn honoured_settings() {
        let cfg = AnsibleCfg::parse(
            "# comment\n[defaults]\ninventory = ./inventory/hosts.ini\nroles_path = roles:./vendor/roles:/etc/ansible/roles\nhash_behaviour = merge\nansible_managed: Managed by {{ who }} ; inline comment\nhost_key_checking = False\nretry_files_enabled = no\n[ssh_connection]\npipelining = True\n[privilege_escalation]\nbecome = True\n",
        )
        .unwrap();
        assert_eq!(cfg.inventory.as_deref(), Some("inventory/hosts.ini"));
        assert_eq!(cfg.roles_path(), ["roles", "vendor/roles"]);
        assert!(cfg.hash_merge);
        assert_eq!(cfg.ansible_managed(), "Managed by {{ who }}");
        assert_eq!(AnsibleCfg::default().ansible_managed(), "Ansible managed");
    }

    #[test]
    fn refused_settings_name_line_and_key() {
        let e = AnsibleCfg::parse(
            "[defaults]\nvault_password_file = ~/.vault\nerror_on_undefined_vars = False\nforks = 50\nhash_behavior = merge\nforce_handlers = yes\n[tags]\nrun = web\n[diff]\nalways = True\n",
        )
        .unwrap_err()
        .to_string();
        for want in [
            "ansible.cfg:2: key `defaults.vault_password_file`",
            "Vault",
            "ansible.cfg:3: key `defaults.error_on_undefined_vars`",
            "ansible.cfg:5: key `defaults.hash_behavior`",
            "unknown setting",
            "ansible.cfg:6: key `defaults.force_handlers`",
            "ansible.cfg:8: key `tags.run`",
            "ansible.cfg:10: key `diff.always`",
        ] {
            assert!(e.contains(want), "{want}: {e}");
        }
        assert!(!e.contains(":4:"), "{e}");
    }

    #[test]
    fn malformed_files() {
        for (text, want) in [
            ("x = 1\n", "ansible.cfg:1: a setting before any [section]"),
            ("[defaults\n", "ansible.cfg:1: invalid section header"),
            (
                "[defaults]\nnovalue\n",
                "ansible.cfg:2: expected `key = value`",
            ),
            (
                "[defaults]\nforks=1\nforks=2\n",
                "ansible.cfg:3: option `forks` in section [defaults] already exists (line 2)",
            ),
            ("[defaults]\ninventory = localhost,\n", "a list of hosts"),
            (
                "[defaults]\ninventory = /etc/ansible/hosts\n",
                "inside the repository",
            ),
        ] {
            let e = AnsibleCfg::parse(text).unwrap_err().to_string();
            assert!(e.contains(want), "{text:?}: {e}");
        }
    }
}
