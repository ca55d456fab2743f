//! The modules, by name. A task names one by its short name (`copy`) or its fully qualified
//! collection name (`ansible.builtin.copy`).

pub mod blockinfile;
pub mod command;
pub mod control;
pub mod copy;
pub mod file;
pub mod lineinfile;
pub mod template;

use crate::resource::Module;

/// Every module this build supports, by short name.
static MODULES: &[(&str, &dyn Module)] = &[
    ("assert", &control::AssertModule),
    ("blockinfile", &blockinfile::BlockinfileModule),
    ("command", &command::CommandModule),
    ("copy", &copy::CopyModule),
    ("debug", &control::DebugModule),
    ("fail", &control::FailModule),
    ("file", &file::FileModule),
    ("lineinfile", &lineinfile::LineinfileModule),
    ("set_fact", &control::SetFactModule),
    ("shell", &command::ShellModule),
    ("template", &template::TemplateModule),
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
