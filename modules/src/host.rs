//! State of the host that many tasks ask about, read once per run and shared: the package
//! database, systemd units, the local account databases and user/group name lookups. This is
//! what makes a play of fifty `apt` and `service` tasks cost one database read and one
//! `systemctl show` rather than one process per task.
//!
//! Caches are filled lazily on first use, from hints the engine gathers before the run (every
//! package and unit a task names literally anywhere in the playbook, as each module declares in
//! `Module::host_queries`), and invalidated for what a task changed. Only checks are batched: changes are still applied task by task, in playbook order.

use std::collections::{BTreeSet, HashMap};
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

use crate::fsops::IdCache;
use crate::modules::accounts::{Db, Etc};
use crate::resource::ModuleError;

/// An installed package as the package database records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstalledPackage {
    pub name: String,
    pub version: String,
    pub arch: String,
    /// dpkg's "config-files" state: removed but not purged.
    pub config_only: bool,
    /// dpkg's package state (`installed`, `half-configured`, ...; rpm: `installed`).
    pub state: String,
}

impl InstalledPackage {
    /// Installed and configured: not left half-way by a failed maintainer script.
    pub fn is_configured(&self) -> bool {
        matches!(
            self.state.as_str(),
            "installed" | "triggers-pending" | "triggers-awaited"
        )
    }
}

/// A systemd unit's state, from `systemctl show`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnitState {
    pub id: String,
    /// `loaded`, `not-found`, `masked`, ...
    pub load_state: String,
    /// `active`, `inactive`, `failed`, `activating`, ...
    pub active_state: String,
    pub sub_state: String,
    /// `enabled`, `disabled`, `static`, `masked`, `indirect`, `alias`, `generated`, ... (empty
    /// when the unit has no unit file).
    pub unit_file_state: String,
    pub can_reload: bool,
    /// Every property read, for the registered result's `status`.
    pub properties: Vec<(String, String)>,
}

impl UnitState {
    pub fn exists(&self) -> bool {
        self.load_state != "not-found" || !self.unit_file_state.is_empty()
    }
    pub fn is_active(&self) -> bool {
        matches!(
            self.active_state.as_str(),
            "active" | "activating" | "reloading"
        )
    }
    pub fn is_enabled(&self) -> bool {
        // As Ansible's systemd module: `systemctl is-enabled` succeeds for these.
        matches!(
            self.unit_file_state.as_str(),
            "enabled" | "enabled-runtime" | "static" | "indirect" | "alias" | "generated"
        )
    }
    pub fn is_masked(&self) -> bool {
        self.load_state == "masked" || self.unit_file_state.starts_with("masked")
    }
}

/// What the tasks of a playbook will ask of the host, gathered before the run from each
/// module's [`crate::resource::Module::host_queries`].
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct HostQueries {
    /// Package names (as the package manager takes them).
    pub packages: Vec<String>,
    /// systemd unit names.
    pub units: Vec<String>,
}

impl HostQueries {
    /// The names a literal argument value gives (a list, or comma-separated text); templates
    /// are left out, they are known only at run time.
    pub fn literal_names(value: &minijinja::Value, out: &mut Vec<String>) {
        if let Some(s) = value.as_str() {
            for n in s.split(',') {
                let n = n.trim();
                if !n.is_empty() && !n.contains("{{") && !n.contains("{%") {
                    out.push(n.to_string());
                }
            }
        } else if let Ok(iter) = value.try_iter() {
            for item in iter {
                HostQueries::literal_names(&item, out);
            }
        }
    }

    /// The packages a package task names literally (`name`, or its alias `pkg`).
    pub fn packages_named(&mut self, args: &indexmap::IndexMap<String, minijinja::Value>) {
        if let Some(v) = args.get("name").or_else(|| args.get("pkg")) {
            HostQueries::literal_names(v, &mut self.packages);
        }
    }

    /// The unit a service task names literally.
    pub fn units_named(&mut self, args: &indexmap::IndexMap<String, minijinja::Value>) {
        if let Some(v) = args.get("name").or_else(|| args.get("pkg")) {
            HostQueries::literal_names(v, &mut self.units);
        }
    }

    /// Sorted, each name once.
    pub fn dedup(&mut self) {
        self.packages.sort();
        self.packages.dedup();
        self.units.sort();
        self.units.dedup();
    }
}

/// Installed versions by (installroot, name); `None` = not asked yet.
type RpmCache = HashMap<(PathBuf, String), Option<Vec<InstalledPackage>>>;

/// Host state shared by the tasks of one run.
pub struct HostState {
    dpkg_admindir: PathBuf,
    dpkg: Mutex<Option<HashMap<String, Vec<InstalledPackage>>>>,
    rpm: Mutex<RpmCache>,
    rpm_hints: Mutex<BTreeSet<String>>,
    units: Mutex<HashMap<String, UnitState>>,
    unit_hints: Mutex<BTreeSet<String>>,
    /// The account databases by `/etc` directory (one read covers every account).
    accounts: Mutex<HashMap<PathBuf, Arc<Db>>>,
    /// User and group names and ids looked up so far (forgotten with the account databases).
    ids: IdCache,
}

impl Default for HostState {
    fn default() -> Self {
        HostState::new()
    }
}

impl HostState {
    pub fn new() -> HostState {
        HostState {
            dpkg_admindir: PathBuf::from("/var/lib/dpkg"),
            dpkg: Mutex::new(None),
            rpm: Mutex::new(HashMap::new()),
            rpm_hints: Mutex::new(BTreeSet::new()),
            units: Mutex::new(HashMap::new()),
            unit_hints: Mutex::new(BTreeSet::new()),
            accounts: Mutex::new(HashMap::new()),
            ids: IdCache::new(),
        }
    }

    /// What the tasks of a run will ask about, so that one query covers them all.
    pub fn hint(&self, queries: HostQueries) {
        self.hint_packages(queries.packages);
        self.hint_units(queries.units);
    }

    /// Package names a later task will ask about, so that one query covers them all.
    fn hint_packages<I: IntoIterator<Item = String>>(&self, names: I) {
        lock(&self.rpm_hints).extend(names);
    }

    /// Unit names a later task will ask about.
    fn hint_units<I: IntoIterator<Item = String>>(&self, names: I) {
        lock(&self.unit_hints).extend(names.into_iter().map(|n| unit_name(&n)));
    }

    // ---- dpkg ----

    /// The installed versions of `name` (several for multi-arch), or none.
    pub fn dpkg_installed(&self, name: &str) -> Result<Vec<InstalledPackage>, ModuleError> {
        let mut cache = lock(&self.dpkg);
        if cache.is_none() {
            *cache = Some(read_dpkg_db(&self.dpkg_admindir)?);
        }
        let (base, arch) = match name.split_once(':') {
            Some((b, a)) => (b, Some(a)),
            None => (name, None),
        };
        let all = cache
            .as_ref()
            .and_then(|c| c.get(base))
            .cloned()
            .unwrap_or_default();
        Ok(all
            .into_iter()
            .filter(|p| arch.is_none_or(|a| p.arch == a || p.arch == "all"))
            .collect())
    }

    /// Forget the package database (after a transaction changed it).
    pub fn invalidate_packages(&self) {
        *lock(&self.dpkg) = None;
        lock(&self.rpm).clear();
    }

    // ---- rpm ----

    /// The installed packages that `spec` names in the rpm database under `root`: a name,
    /// `name-version`, `name-version-release`, with or without `.arch`, as `rpm -q` takes them.
    pub fn rpm_installed(
        &self,
        root: &Path,
        spec: &str,
    ) -> Result<Vec<InstalledPackage>, ModuleError> {
        let key = (root.to_path_buf(), spec.to_string());
        if let Some(Some(found)) = lock(&self.rpm).get(&key) {
            return Ok(found.clone());
        }
        // One `rpm -q` for this spec and every hinted one not known yet.
        let mut specs: BTreeSet<String> = {
            let cache = lock(&self.rpm);
            lock(&self.rpm_hints)
                .iter()
                .filter(|n| !cache.contains_key(&(root.to_path_buf(), (*n).clone())))
                .cloned()
                .collect()
        };
        specs.insert(spec.to_string());
        let found = query_rpm(root, &specs)?;
        let mut cache = lock(&self.rpm);
        for s in &specs {
            let v: Vec<InstalledPackage> = found
                .iter()
                .filter(|p| rpm_spec_matches(s, p))
                .cloned()
                .collect();
            cache.insert((root.to_path_buf(), s.clone()), Some(v));
        }
        Ok(cache.get(&key).cloned().flatten().unwrap_or_default())
    }

    // ---- systemd ----

    /// The state of each unit, read with one `systemctl show` for these and every hinted unit
    /// not read yet.
    pub fn units(&self, names: &[String]) -> Result<Vec<UnitState>, ModuleError> {
        let wanted: Vec<String> = names.iter().map(|n| unit_name(n)).collect();
        let missing: BTreeSet<String> = {
            let cache = lock(&self.units);
            let mut m: BTreeSet<String> = wanted
                .iter()
                .filter(|n| !cache.contains_key(*n))
                .cloned()
                .collect();
            if !m.is_empty() {
                m.extend(
                    lock(&self.unit_hints)
                        .iter()
                        .filter(|n| !cache.contains_key(*n))
                        .cloned(),
                );
            }
            m
        };
        if !missing.is_empty() {
            let names: Vec<String> = missing.into_iter().collect();
            let states = systemctl_show(&names)?;
            let mut cache = lock(&self.units);
            for (n, s) in names.into_iter().zip(states) {
                cache.insert(n, s);
            }
        }
        let cache = lock(&self.units);
        Ok(wanted
            .iter()
            .map(|n| cache.get(n).cloned().unwrap_or_default())
            .collect())
    }

    pub fn unit(&self, name: &str) -> Result<UnitState, ModuleError> {
        Ok(self
            .units(&[name.to_string()])?
            .into_iter()
            .next()
            .unwrap_or_default())
    }

    /// Forget what is known of units (after a change to one, or a daemon-reload).
    pub fn invalidate_units(&self) {
        lock(&self.units).clear();
    }

    // ---- accounts ----

    /// The account databases under `etc` (`passwd`, `group`, `shadow`), read once until a task
    /// changes something.
    pub fn accounts(&self, etc: &Etc) -> Result<Arc<Db>, ModuleError> {
        if let Some(db) = lock(&self.accounts).get(&etc.dir) {
            return Ok(db.clone());
        }
        let db = Arc::new(etc.read()?);
        lock(&self.accounts).insert(etc.dir.clone(), db.clone());
        Ok(db)
    }

    /// Forget the account databases and the user and group lookups (after a task that may
    /// have changed them: an owner name may now mean another id).
    pub fn invalidate_accounts(&self) {
        lock(&self.accounts).clear();
        self.ids.clear();
    }

    /// User and group lookups through the system's name service (not only the local `/etc`
    /// files read by [`HostState::accounts`]), cached until [`HostState::invalidate_accounts`].
    pub fn ids(&self) -> &IdCache {
        &self.ids
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding the lock leaves a cache, not an invariant: keep going.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// `foo` → `foo.service`, as systemctl does for a name without a unit type.
pub fn unit_name(name: &str) -> String {
    const TYPES: &[&str] = &[
        ".service",
        ".socket",
        ".target",
        ".timer",
        ".mount",
        ".automount",
        ".path",
        ".slice",
        ".scope",
        ".swap",
        ".device",
    ];
    if TYPES.iter().any(|t| name.ends_with(t)) || name.contains('@') && name.ends_with('@') {
        name.to_string()
    } else {
        format!("{name}.service")
    }
}

/// Reads dpkg's status file: every package not in state `not-installed`, by name.
///
/// Read directly rather than through `dpkg-query`: it is one file read instead of a process, and
/// its format (deb822 paragraphs) is dpkg's stable interface. When dpkg left journal entries in
/// `updates/` (an interrupted run), the file is stale, so `dpkg-query` answers instead.
pub fn read_dpkg_db(
    admindir: &Path,
) -> Result<HashMap<String, Vec<InstalledPackage>>, ModuleError> {
    let pending = std::fs::read_dir(admindir.join("updates"))
        .map(|d| {
            d.flatten().any(|e| {
                e.file_name()
                    .to_string_lossy()
                    .bytes()
                    .all(|b| b.is_ascii_digit())
            })
        })
        .unwrap_or(false);
    let text = if pending {
        dpkg_query_status(admindir)?
    } else {
        match std::fs::read_to_string(admindir.join("status")) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
            Err(e) => {
                return Err(ModuleError::new(format!(
                    "cannot read {}: {e}",
                    admindir.join("status").display()
                )))
            }
        }
    };
    Ok(parse_dpkg_status(&text))
}

fn dpkg_query_status(admindir: &Path) -> Result<String, ModuleError> {
    let out = Command::new("dpkg-query")
        .arg(format!("--admindir={}", admindir.display()))
        .args([
            "-W",
            "-f=Package: ${Package}\nStatus: ${Status}\nVersion: ${Version}\nArchitecture: ${Architecture}\n\n",
        ])
        .output()
        .map_err(|e| ModuleError::new(format!("cannot run dpkg-query: {e}")))?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

pub fn parse_dpkg_status(text: &str) -> HashMap<String, Vec<InstalledPackage>> {
    let mut db: HashMap<String, Vec<InstalledPackage>> = HashMap::new();
    for para in text.split("\n\n") {
        let (mut name, mut status, mut version, mut arch) = ("", "", "", "");
        for line in para.lines() {
            if line.starts_with([' ', '\t']) {
                continue;
            }
            if let Some((k, v)) = line.split_once(':') {
                let v = v.trim();
                match k {
                    "Package" => name = v,
                    "Status" => status = v,
                    "Version" => version = v,
                    "Architecture" => arch = v,
                    _ => {}
                }
            }
        }
        // Status: want flag status, e.g. "install ok installed", "deinstall ok config-files".
        let state = status.rsplit(' ').next().unwrap_or("");
        let config_only = state == "config-files";
        let installed = matches!(
            state,
            "installed"
                | "half-configured"
                | "unpacked"
                | "half-installed"
                | "triggers-awaited"
                | "triggers-pending"
        );
        if name.is_empty() || !(installed || config_only) {
            continue;
        }
        db.entry(name.to_string())
            .or_default()
            .push(InstalledPackage {
                name: name.to_string(),
                version: version.to_string(),
                arch: arch.to_string(),
                config_only,
                state: state.to_string(),
            });
    }
    db
}

fn query_rpm(root: &Path, specs: &BTreeSet<String>) -> Result<Vec<InstalledPackage>, ModuleError> {
    let mut cmd = Command::new("rpm");
    if root != Path::new("/") {
        cmd.arg("--root").arg(root);
    }
    cmd.args([
        "-q",
        "--qf",
        "%{NAME}\t%{EPOCHNUM}:%{VERSION}-%{RELEASE}\t%{ARCH}\n",
    ]);
    cmd.arg("--").args(specs);
    let out = cmd
        .output()
        .map_err(|e| ModuleError::new(format!("cannot run rpm: {e}")))?;
    // rpm exits 1 when some are not installed and prints "package X is not installed" for them.
    let mut found = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let f: Vec<&str> = line.split('\t').collect();
        if f.len() == 3 {
            let version = f[1].strip_prefix("0:").unwrap_or(f[1]);
            found.push(InstalledPackage {
                name: f[0].to_string(),
                version: version.to_string(),
                arch: f[2].to_string(),
                config_only: false,
                state: "installed".to_string(),
            });
        }
    }
    found.dedup();
    Ok(found)
}

/// Does `spec` (`name`, `name-ver`, `name-ver-rel`, each optionally `.arch`) name `p`?
pub fn rpm_spec_matches(spec: &str, p: &InstalledPackage) -> bool {
    let (ver, rel) = p
        .version
        .rsplit_once('-')
        .unwrap_or((p.version.as_str(), ""));
    let ver = ver.split_once(':').map(|(_, v)| v).unwrap_or(ver);
    let forms = [
        p.name.clone(),
        format!("{}-{ver}", p.name),
        format!("{}-{ver}-{rel}", p.name),
    ];
    forms
        .iter()
        .any(|f| spec == f || spec == format!("{f}.{}", p.arch))
}

const UNIT_PROPERTIES: &str =
    "Id,LoadState,ActiveState,SubState,UnitFileState,CanReload,Description,MainPID,FragmentPath";

/// One `systemctl show` for all `names`; blocks come back in the order asked.
fn systemctl_show(names: &[String]) -> Result<Vec<UnitState>, ModuleError> {
    let out = Command::new("systemctl")
        .arg("show")
        .arg(format!("--property={UNIT_PROPERTIES}"))
        .arg("--")
        .args(names)
        .env("SYSTEMD_PAGER", "")
        .output()
        .map_err(|e| ModuleError::new(format!("cannot run systemctl: {e}")))?;
    if !out.status.success() && out.stdout.is_empty() {
        return Err(ModuleError::new(format!(
            "systemctl show failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let states = parse_systemctl_show(&text);
    if states.len() != names.len() {
        return Err(ModuleError::new(format!(
            "systemctl show returned {} units for {} asked",
            states.len(),
            names.len()
        )));
    }
    Ok(states)
}

pub fn parse_systemctl_show(text: &str) -> Vec<UnitState> {
    let mut units = Vec::new();
    for block in text.split("\n\n") {
        if block.trim().is_empty() {
            continue;
        }
        let mut u = UnitState::default();
        for line in block.lines() {
            let Some((k, v)) = line.split_once('=') else {
                continue;
            };
            match k {
                "Id" => u.id = v.to_string(),
                "LoadState" => u.load_state = v.to_string(),
                "ActiveState" => u.active_state = v.to_string(),
                "SubState" => u.sub_state = v.to_string(),
                "UnitFileState" => u.unit_file_state = v.to_string(),
                "CanReload" => u.can_reload = v == "yes",
                _ => {}
            }
            u.properties.push((k.to_string(), v.to_string()));
        }
        units.push(u);
    }
    units
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accounts_are_read_once_until_a_change() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("passwd"),
            "a:x:1001:1001::/home/a:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("group"), "").unwrap();
        let etc = Etc {
            dir: dir.path().to_path_buf(),
        };
        let host = HostState::new();
        assert!(host.accounts(&etc).unwrap().user("a").is_some());
        std::fs::write(
            dir.path().join("passwd"),
            "b:x:1002:1002::/home/b:/bin/sh\n",
        )
        .unwrap();
        assert!(
            host.accounts(&etc).unwrap().user("b").is_none(),
            "read once"
        );
        host.invalidate_accounts();
        assert!(host.accounts(&etc).unwrap().user("b").is_some());
    }

    /// A name service whose accounts the test changes, as `useradd`/`usermod` would.
    #[derive(Clone, Default)]
    struct Accounts(Arc<Mutex<HashMap<String, u32>>>);

    impl crate::fsops::IdSource for Accounts {
        fn id(&self, group: bool, name: &str) -> Option<u32> {
            (!group).then(|| lock(&self.0).get(name).copied())?
        }
        fn name(&self, group: bool, id: u32) -> Option<String> {
            if group {
                return None;
            }
            let users = lock(&self.0);
            users
                .iter()
                .find(|(_, u)| **u == id)
                .map(|(n, _)| n.clone())
        }
    }

    #[test]
    fn user_lookups_are_forgotten_with_the_accounts() {
        let users = Accounts::default();
        let host = HostState {
            ids: IdCache::with_source(Box::new(users.clone())),
            ..HostState::new()
        };
        assert_eq!(
            host.ids().uid_for("deploy").unwrap_err().to_string(),
            "chown failed: failed to look up user deploy"
        );
        lock(&users.0).insert("deploy".into(), 1001);
        assert_eq!(host.ids().uid_for("deploy").unwrap(), 1001, "created later");
        assert_eq!(host.ids().user_name(1001), "deploy");
        // A task changes the user's uid: within the run the answer is cached...
        lock(&users.0).insert("deploy".into(), 1002);
        assert_eq!(host.ids().uid_for("deploy").unwrap(), 1001, "cached");
        assert_eq!(host.ids().user_name(1002), "deploy");
        lock(&users.0).insert("other".into(), 1001);
        assert_eq!(host.ids().user_name(1001), "deploy", "cached");
        // ...until the engine forgets the account state after the task's apply.
        host.invalidate_accounts();
        assert_eq!(host.ids().uid_for("deploy").unwrap(), 1002);
        assert_eq!(host.ids().user_name(1001), "other");
    }

    #[test]
    fn dpkg_status_keeps_installed_and_config_files() {
        let text = "Package: a\nStatus: install ok installed\nVersion: 1.0\nArchitecture: amd64\nDescription: x\n continued: line\n\n\
                    Package: b\nStatus: deinstall ok config-files\nVersion: 2\nArchitecture: all\n\n\
                    Package: c\nStatus: purge ok not-installed\nArchitecture: amd64\n\n\
                    Package: a\nStatus: install ok installed\nVersion: 1.0\nArchitecture: i386\n";
        let db = parse_dpkg_status(text);
        assert_eq!(db["a"].len(), 2);
        assert_eq!(db["a"][0].version, "1.0");
        assert!(db["b"][0].config_only);
        assert!(!db.contains_key("c"));
    }

    #[test]
    fn systemctl_show_blocks_in_order() {
        let text = "Id=a.service\nLoadState=loaded\nActiveState=active\nSubState=running\nUnitFileState=enabled\nCanReload=yes\n\n\
                    Id=nope.service\nLoadState=not-found\nActiveState=inactive\nSubState=dead\nUnitFileState=\nCanReload=no\n";
        let u = parse_systemctl_show(text);
        assert_eq!(u.len(), 2);
        assert!(u[0].is_active() && u[0].is_enabled() && u[0].can_reload);
        assert!(!u[1].exists());
    }

    #[test]
    fn rpm_specs_match_name_version_release_arch() {
        let p = InstalledPackage {
            name: "gatest-hello".into(),
            version: "2.0-1".into(),
            arch: "noarch".into(),
            config_only: false,
            state: "installed".into(),
        };
        for s in [
            "gatest-hello",
            "gatest-hello-2.0",
            "gatest-hello-2.0-1",
            "gatest-hello.noarch",
            "gatest-hello-2.0-1.noarch",
        ] {
            assert!(rpm_spec_matches(s, &p), "{s}");
        }
        for s in ["gatest-hello-1.0", "gatest-hell", "gatest-hello.x86_64"] {
            assert!(!rpm_spec_matches(s, &p), "{s}");
        }
    }

    #[test]
    fn unit_names_get_a_type() {
        assert_eq!(unit_name("nginx"), "nginx.service");
        assert_eq!(unit_name("foo.timer"), "foo.timer");
        assert_eq!(unit_name("getty@tty1.service"), "getty@tty1.service");
    }

    #[test]
    fn reads_this_hosts_dpkg_database() {
        // The build host is Debian: dpkg itself must be installed.
        if !Path::new("/var/lib/dpkg/status").exists() {
            return;
        }
        let db = read_dpkg_db(Path::new("/var/lib/dpkg")).expect("read");
        assert!(db.get("dpkg").is_some_and(|v| !v[0].version.is_empty()));
    }
}
