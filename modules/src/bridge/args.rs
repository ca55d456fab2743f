//! The module's input: `{"ANSIBLE_MODULE_ARGS": {...}}` with the task's rendered arguments and
//! the internal `_ansible_*` keys ansible-core 2.19's executor sets
//! (plugins/action/__init__.py `_update_module_args`), read by module_utils/basic.py.

use serde_json::{json, Map, Value as Json};

/// The run's settings a module is told about.
#[derive(Debug, Clone, PartialEq)]
pub struct ModuleFlags {
    pub check_mode: bool,
    pub diff: bool,
    pub no_log: bool,
    /// The name as the task wrote it (`_ansible_module_name`).
    pub module_name: String,
    /// ansible-core's version (`_ansible_version`).
    pub version: String,
    /// A private directory for the module's temporary files (`_ansible_tmpdir`).
    pub tmpdir: String,
}

/// The JSON document the module reads (its file argument).
pub fn module_input(args: Map<String, Json>, flags: &ModuleFlags) -> Json {
    let mut all = args;
    let internal = json!({
        "_ansible_check_mode": flags.check_mode,
        // DEFAULT_NO_TARGET_SYSLOG is false: no_log is the task's.
        "_ansible_no_log": flags.no_log,
        "_ansible_debug": false,
        "_ansible_diff": flags.diff,
        "_ansible_verbosity": 0,
        "_ansible_version": flags.version,
        "_ansible_module_name": flags.module_name,
        "_ansible_syslog_facility": "LOG_USER",
        "_ansible_selinux_special_fs": ["fuse", "nfs", "vboxsf", "ramfs", "9p", "vfat"],
        "_ansible_socket": null,
        "_ansible_shell_executable": "/bin/sh",
        "_ansible_keep_remote_files": false,
        "_ansible_tmpdir": flags.tmpdir,
        "_ansible_remote_tmp": "~/.ansible/tmp",
        "_ansible_ignore_unknown_opts": false,
        "_ansible_target_log_info": null,
        "_ansible_tracebacks_for": [],
    });
    if let Json::Object(m) = internal {
        all.extend(m);
    }
    json!({ "ANSIBLE_MODULE_ARGS": Json::Object(all) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_keys_follow_the_task() {
        let mut args = Map::new();
        args.insert("path".into(), json!("/etc/hosts"));
        let flags = ModuleFlags {
            check_mode: true,
            diff: false,
            no_log: true,
            module_name: "ansible.builtin.stat".into(),
            version: "2.19.4".into(),
            tmpdir: "/tmp/x".into(),
        };
        let doc = module_input(args, &flags);
        let a = &doc["ANSIBLE_MODULE_ARGS"];
        assert_eq!(a["path"], json!("/etc/hosts"));
        assert_eq!(a["_ansible_check_mode"], json!(true));
        assert_eq!(a["_ansible_diff"], json!(false));
        assert_eq!(a["_ansible_no_log"], json!(true));
        assert_eq!(a["_ansible_module_name"], json!("ansible.builtin.stat"));
        assert_eq!(a["_ansible_version"], json!("2.19.4"));
        assert_eq!(a["_ansible_tmpdir"], json!("/tmp/x"));
    }

    #[test]
    fn a_task_cannot_set_internal_keys() {
        let mut args = Map::new();
        args.insert("_ansible_check_mode".into(), json!(false));
        let flags = ModuleFlags {
            check_mode: true,
            diff: false,
            no_log: false,
            module_name: "x".into(),
            version: "2.19".into(),
            tmpdir: "/t".into(),
        };
        assert_eq!(
            module_input(args, &flags)["ANSIBLE_MODULE_ARGS"]["_ansible_check_mode"],
            json!(true)
        );
    }
}
