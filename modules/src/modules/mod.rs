//! The modules, by name. A task names one by its short name (`copy`) or its fully qualified
//! collection name (`ansible.builtin.copy`, `ansible.posix.authorized_key`).

pub mod accounts;
pub mod apt;
pub mod apt_repository;
pub mod authorized_key;
pub mod blockinfile;
pub mod command;
pub mod control;
pub mod copy;
pub mod deb822_repository;
pub mod dnf;
pub mod file;
pub mod get_url;
pub mod group;
pub mod include_vars;
pub mod lineinfile;
pub mod package;
pub mod pkg;
pub mod systemd;
pub mod template;
#[cfg(test)]
pub(crate) mod testing;
pub mod unarchive;
pub mod uri;
pub mod user;
pub mod wait_for;

use crate::resource::Module;

/// Every module this build supports, by short name.
static MODULES: &[(&str, &dyn Module)] = &[
    ("apt", &apt::AptModule),
    ("apt_repository", &apt_repository::AptRepositoryModule),
    ("assert", &control::AssertModule),
    ("authorized_key", &authorized_key::AuthorizedKeyModule),
    ("blockinfile", &blockinfile::BlockinfileModule),
    ("command", &command::CommandModule),
    ("copy", &copy::CopyModule),
    (
        "deb822_repository",
        &deb822_repository::Deb822RepositoryModule,
    ),
    ("debug", &control::DebugModule),
    ("dnf", &dnf::DnfModule),
    ("fail", &control::FailModule),
    ("file", &file::FileModule),
    ("get_url", &get_url::GetUrlModule),
    ("group", &group::GroupModule),
    ("include_vars", &include_vars::IncludeVarsModule),
    ("lineinfile", &lineinfile::LineinfileModule),
    ("package", &package::PackageModule),
    ("pause", &wait_for::PauseModule),
    ("service", &systemd::ServiceModule),
    ("set_fact", &control::SetFactModule),
    ("shell", &command::ShellModule),
    ("systemd", &systemd::SystemdModule),
    ("systemd_service", &systemd::SystemdModule),
    ("template", &template::TemplateModule),
    ("unarchive", &unarchive::UnarchiveModule),
    ("uri", &uri::UriModule),
    ("user", &user::UserModule),
    ("wait_for", &wait_for::WaitForModule),
    ("yum", &dnf::DnfModule),
];

/// Modules that come from a collection other than ansible.builtin, by collection: their FQCN is
/// `COLLECTION.NAME`; the short name finds them too (ansible-core's routing redirects the short
/// and `ansible.builtin.` names there).
static COLLECTIONS: &[(&str, &[&str])] = &[
    ("ansible.posix", &["authorized_key"]),
    ("community.general", &[]),
];

/// The short name of a module name as written in a task, if it is one we know.
pub fn canonical_name(name: &str) -> Option<&'static str> {
    let short = if let Some((collection, short)) = COLLECTIONS
        .iter()
        .find_map(|(c, names)| Some((names, name.strip_prefix(c)?.strip_prefix('.')?)))
    {
        if !collection.contains(&short) {
            return None;
        }
        short
    } else {
        name.strip_prefix("ansible.builtin.")
            .or_else(|| name.strip_prefix("ansible.legacy."))
            .unwrap_or(name)
    };
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

#[cfg(test)]
mod tests {
    use super::canonical_name;

    #[test]
    fn names_and_collections() {
        assert_eq!(canonical_name("user"), Some("user"));
        assert_eq!(canonical_name("ansible.builtin.group"), Some("group"));
        assert_eq!(
            canonical_name("ansible.posix.authorized_key"),
            Some("authorized_key")
        );
        assert_eq!(canonical_name("authorized_key"), Some("authorized_key"));
        assert_eq!(canonical_name("ansible.posix.copy"), None);
        assert_eq!(canonical_name("community.general.user"), None);
        assert_eq!(canonical_name("community.general"), None);
    }
}
