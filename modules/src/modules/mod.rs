//! The modules, by name. A task names one by its short name (`copy`) or its fully qualified
//! collection name (`ansible.builtin.copy`, `ansible.posix.authorized_key`).

pub mod accounts;
pub mod alternatives;
pub mod apt;
pub mod apt_repository;
pub mod assemble;
pub mod authorized_key;
pub mod blockinfile;
pub mod command;
pub mod control;
pub mod copy;
pub mod cron;
pub mod deb822_repository;
pub mod debconf;
pub mod debops_dpkg_divert;
pub mod dnf;
pub mod dpkg_divert;
pub mod file;
pub mod find;
pub mod get_url;
pub mod getent;
pub mod git;
pub mod group;
pub mod hostname;
pub mod include_vars;
pub mod ini_file;
pub mod known_hosts;
pub mod lineinfile;
pub mod locale_gen;
pub mod modprobe;
pub mod mount;
pub mod package;
pub mod package_facts;
pub mod pip;
pub mod pkg;
pub(crate) mod python_re;
pub(crate) mod query;
pub mod raw;
pub mod reboot;
pub mod replace;
pub mod script;
pub mod service_facts;
pub mod setup;
pub mod stat;
pub mod sysctl;
pub mod systemd;
pub mod systool;
pub mod tempfile;
pub mod template;
#[cfg(test)]
pub(crate) mod testing;
pub mod timezone;
pub mod unarchive;
pub mod uri;
pub mod user;
pub mod wait_for;

use crate::resource::Module;

/// Every module this build supports, by short name.
static MODULES: &[(&str, &dyn Module)] = &[
    ("alternatives", &alternatives::AlternativesModule),
    ("apt", &apt::AptModule),
    ("apt_repository", &apt_repository::AptRepositoryModule),
    ("assemble", &assemble::AssembleModule),
    ("assert", &control::AssertModule),
    ("authorized_key", &authorized_key::AuthorizedKeyModule),
    ("blockinfile", &blockinfile::BlockinfileModule),
    ("command", &command::CommandModule),
    ("copy", &copy::CopyModule),
    ("cron", &cron::CronModule),
    (
        "deb822_repository",
        &deb822_repository::Deb822RepositoryModule,
    ),
    ("debconf", &debconf::DebconfModule),
    // Registered by its FQCN only: its short name is community.general's module.
    (
        "debops.debops.dpkg_divert",
        &debops_dpkg_divert::DebopsDpkgDivertModule,
    ),
    ("debug", &control::DebugModule),
    ("dnf", &dnf::DnfModule),
    ("dpkg_divert", &dpkg_divert::DpkgDivertModule),
    ("fail", &control::FailModule),
    ("gather_facts", &setup::GatherFactsModule),
    ("getent", &getent::GetentModule),
    ("file", &file::FileModule),
    ("git", &git::GitModule),
    ("find", &find::FindModule),
    ("get_url", &get_url::GetUrlModule),
    ("group", &group::GroupModule),
    ("hostname", &hostname::HostnameModule),
    ("include_vars", &include_vars::IncludeVarsModule),
    ("ini_file", &ini_file::IniFileModule),
    ("known_hosts", &known_hosts::KnownHostsModule),
    ("lineinfile", &lineinfile::LineinfileModule),
    ("locale_gen", &locale_gen::LocaleGenModule),
    ("modprobe", &modprobe::ModprobeModule),
    ("mount", &mount::MountModule),
    ("package", &package::PackageModule),
    ("pip", &pip::PipModule),
    ("replace", &replace::ReplaceModule),
    ("raw", &raw::RawModule),
    ("reboot", &reboot::RebootModule),
    ("script", &script::ScriptModule),
    ("package_facts", &package_facts::PackageFactsModule),
    ("pause", &wait_for::PauseModule),
    ("service", &systemd::ServiceModule),
    ("service_facts", &service_facts::ServiceFactsModule),
    ("set_fact", &control::SetFactModule),
    ("setup", &setup::SetupModule),
    ("shell", &command::ShellModule),
    ("sysctl", &sysctl::SysctlModule),
    ("stat", &stat::StatModule),
    ("systemd", &systemd::SystemdModule),
    ("systemd_service", &systemd::SystemdModule),
    ("template", &template::TemplateModule),
    ("tempfile", &tempfile::TempfileModule),
    ("timezone", &timezone::TimezoneModule),
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
    ("ansible.posix", &["authorized_key", "mount", "sysctl"]),
    (
        "community.general",
        &[
            "alternatives",
            "dpkg_divert",
            "ini_file",
            "locale_gen",
            "modprobe",
            "timezone",
        ],
    ),
];

/// The short name of a module name as written in a task, if it is one we know.
pub fn canonical_name(name: &str) -> Option<&'static str> {
    // A module registered under its FQCN (another collection's module of the same short name).
    if let Some((n, _)) = MODULES.iter().find(|(n, _)| n.contains('.') && *n == name) {
        return Some(n);
    }
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
        assert_eq!(
            canonical_name("debops.debops.dpkg_divert"),
            Some("debops.debops.dpkg_divert")
        );
        assert_eq!(
            canonical_name("community.general.dpkg_divert"),
            Some("dpkg_divert")
        );
        assert_eq!(canonical_name("dpkg_divert"), Some("dpkg_divert"));
    }
}
