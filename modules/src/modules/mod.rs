//! The modules, by name. A task names one by its short name (`copy`) or its fully qualified
//! collection name (`ansible.builtin.copy`).

pub mod apt;
pub mod blockinfile;
pub mod command;
pub mod control;
pub mod copy;
pub mod dnf;
pub mod file;
pub mod lineinfile;
pub mod package;
pub mod systemd;
pub mod template;

use crate::resource::Module;

/// Every module this build supports, by short name.
static MODULES: &[(&str, &dyn Module)] = &[
    ("apt", &apt::AptModule),
    ("assert", &control::AssertModule),
    ("blockinfile", &blockinfile::BlockinfileModule),
    ("command", &command::CommandModule),
    ("copy", &copy::CopyModule),
    ("debug", &control::DebugModule),
    ("dnf", &dnf::DnfModule),
    ("fail", &control::FailModule),
    ("file", &file::FileModule),
    ("lineinfile", &lineinfile::LineinfileModule),
    ("package", &package::PackageModule),
    ("service", &systemd::ServiceModule),
    ("set_fact", &control::SetFactModule),
    ("shell", &command::ShellModule),
    ("systemd", &systemd::SystemdModule),
    ("systemd_service", &systemd::SystemdModule),
    ("template", &template::TemplateModule),
    ("yum", &dnf::DnfModule),
];

/// The short name of a module name as written in a task, if it is one we know.
pub fn canonical_name(name: &str) -> Option<&'static str> {
    let short = name
        .strip_prefix("ansible.builtin.")
        .or_else(|| name.strip_prefix("ansible.legacy."))
        .unwrap_or(name);
    MODULES.iter().find(|(n, _)| *n == short).map(|(n, _)| *n)
}

/// The module for a name as written in a task.
pub fn lookup(name: &str) -> Option<&'static dyn Module> {
    let short = canonical_name(name)?;
    MODULES.iter().find(|(n, _)| *n == short).map(|(_, m)| *m)
}

/// All supported short names, for messages and docs.
pub fn names() -> impl Iterator<Item = &'static str> {
    MODULES.iter().map(|(n, _)| *n)
}
