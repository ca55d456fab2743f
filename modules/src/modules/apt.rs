//! The `apt` module: Debian packages through apt-get, with Ansible's argument semantics.
//!
//! Check reads the dpkg database once per run (shared through [`HostState`]) and asks
//! `apt-cache policy` only about packages it would install or upgrade; apply runs one apt-get
//! transaction per kind of change, non-interactively. Conffiles: apt-get runs with
//! `--force-confdef --force-confold` (Ansible's default `dpkg_options`): a locally edited
//! conffile is kept, an unedited one is upgraded. apt-get waits up to `lock_timeout` seconds
//! (default 60) for the dpkg lock held by another process instead of failing at once.
//!
//! Kept from Ansible: `update_cache` alone reports changed when the update moved the cache's
//! timestamp (`update-success-stamp`, else the mtime of `/var/lib/apt/lists`); `state: latest` with a version pin is an error; a
//! package in dpkg's config-files state counts as absent, except for `purge: yes`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use minijinja::Value;

use super::pkg::{run_transaction, transactions, TransactionError};
use crate::args::{ArgDef, ArgSpec, ArgType, Args};
use crate::host::{HostQueries, HostState, InstalledPackage};
use crate::process::{self, Ran};
use crate::resource::{
    Change, Check, Module, ModuleContext, ModuleError, Outcome, Owned, PackageOp, Resource,
};
use indexmap::IndexMap;

pub struct AptModule;

static SPEC: ArgSpec = ArgSpec {
    module: "apt",
    args: &[
        ArgDef::new("name", ArgType::List).aliases(&["package", "pkg"]),
        ArgDef::new("state", ArgType::Str).choices(&[
            "absent",
            "present",
            "latest",
            "fixed",
            "installed",
            "removed",
        ]),
        ArgDef::new("update_cache", ArgType::Bool).aliases(&["update-cache"]),
        ArgDef::new("update_cache_retries", ArgType::Int),
        ArgDef::new("cache_valid_time", ArgType::Int),
        ArgDef::new("install_recommends", ArgType::Bool).aliases(&["install-recommends"]),
        ArgDef::new("purge", ArgType::Bool),
        ArgDef::new("autoremove", ArgType::Bool),
        ArgDef::new("deb", ArgType::Path),
        ArgDef::new("default_release", ArgType::Str).aliases(&["default-release"]),
        ArgDef::new("allow_downgrade", ArgType::Bool).aliases(&[
            "allow-downgrade",
            "allow_downgrades",
            "allow-downgrades",
        ]),
        ArgDef::new("allow_unauthenticated", ArgType::Bool).aliases(&["allow-unauthenticated"]),
        ArgDef::new("allow_change_held_packages", ArgType::Bool),
        ArgDef::new("only_upgrade", ArgType::Bool),
        ArgDef::new("upgrade", ArgType::Str).choices(&["dist", "full", "no", "safe", "yes"]),
        ArgDef::new("dpkg_options", ArgType::Str),
        ArgDef::new("force", ArgType::Bool),
        ArgDef::new("force_apt_get", ArgType::Bool),
        ArgDef::new("lock_timeout", ArgType::Int),
        ArgDef::new("fail_on_autoremove", ArgType::Bool),
        ArgDef::new("policy_rc_d", ArgType::Int),
        ArgDef::new("autoclean", ArgType::Bool),
    ],
    free_form: false,
    mutually_exclusive: &[&["deb", "name", "upgrade"]],
    // Ansible's required_one_of here names an argument with a default (set before the check
    // runs), so it never fails: `systemd: name=x` alone reports the unit's status,
    // `apt: cache_valid_time=N` alone updates the cache.
    required_one_of: &[],
};

const DEFAULT_DPKG_OPTIONS: &str = "force-confdef,force-confold";

/// A package as named in a task: `nginx`, `nginx=1.22*`, `libc6:amd64`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PkgSpec {
    /// The name with its architecture qualifier, as apt-get takes it.
    name: String,
    version: Option<String>,
}

impl PkgSpec {
    fn parse(text: &str) -> Result<PkgSpec, ModuleError> {
        let text = text.trim();
        let (name, version) = match text.split_once('=') {
            Some((n, v)) => (n.trim(), Some(v.trim().to_string())),
            None => (text, None),
        };
        if name.is_empty() || name.contains(char::is_whitespace) {
            return Err(ModuleError::new(format!("invalid package name '{text}'")));
        }
        if name.contains(['*', '?', '[']) {
            return Err(ModuleError::new(format!(
                "package name globs are not supported: '{text}'"
            )));
        }
        Ok(PkgSpec {
            name: name.to_string(),
            version: version.filter(|v| !v.is_empty()),
        })
    }

    fn shown(&self) -> String {
        match &self.version {
            Some(v) => format!("{}={v}", self.name),
            None => self.name.clone(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Present,
    Latest,
    Absent,
    Fixed,
}

impl Module for AptModule {
    fn spec(&self) -> &'static ArgSpec {
        &SPEC
    }

    fn host_queries(&self, args: &IndexMap<String, Value>, queries: &mut HostQueries) {
        queries.packages_named(args);
    }

    fn prepare(&self, args: &Args, ctx: &ModuleContext) -> Result<Box<dyn Resource>, ModuleError> {
        let state = match args.str("state").as_deref() {
            None | Some("present") | Some("installed") => State::Present,
            Some("latest") => State::Latest,
            Some("absent") | Some("removed") => State::Absent,
            Some("fixed") => State::Fixed,
            Some(other) => return Err(ModuleError::new(format!("unsupported state {other}"))),
        };
        let packages = args
            .list_str("name")
            .unwrap_or_default()
            .iter()
            .filter(|s| !s.trim().is_empty())
            .map(|s| PkgSpec::parse(s))
            .collect::<Result<Vec<_>, _>>()?;
        if state == State::Latest {
            if let Some(p) = packages.iter().find(|p| p.version.is_some()) {
                return Err(ModuleError::new(format!(
                    "version number inconsistent with state=latest: {}",
                    p.shown()
                )));
            }
        }
        let deb = match args.str("deb") {
            Some(d) => Some(DebFile::locate(&d, ctx)?),
            None => None,
        };
        let upgrade = match args.str("upgrade").as_deref() {
            None | Some("no") => None,
            Some("yes") | Some("safe") => Some("upgrade"),
            Some("dist") | Some("full") => Some("dist-upgrade"),
            Some(o) => return Err(ModuleError::new(format!("unsupported upgrade {o}"))),
        };
        let cache_valid_time = args.int("cache_valid_time").filter(|t| *t > 0);
        let opts = AptOptions {
            install_recommends: args.bool("install_recommends"),
            default_release: args.str("default_release"),
            allow_downgrade: args.bool_or("allow_downgrade", false),
            allow_unauthenticated: args.bool_or("allow_unauthenticated", false)
                || args.bool_or("force", false),
            allow_change_held: args.bool_or("allow_change_held_packages", false),
            only_upgrade: args.bool_or("only_upgrade", false),
            dpkg_options: args
                .str("dpkg_options")
                .unwrap_or_else(|| DEFAULT_DPKG_OPTIONS.to_string()),
            lock_timeout: args.int("lock_timeout").unwrap_or(60),
            update_retries: args.int("update_cache_retries").unwrap_or(5).max(1),
            env: ctx.env.to_vec(),
        };
        Ok(Box::new(AptResource {
            packages,
            state,
            // Ansible 2.4+: giving cache_valid_time means update_cache.
            update_cache: args.bool_or("update_cache", false) || cache_valid_time.is_some(),
            cache_valid_time: cache_valid_time.map(|t| Duration::from_secs(t as u64)),
            purge: args.bool_or("purge", false),
            autoremove: args.bool_or("autoremove", false),
            autoclean: args.bool_or("autoclean", false),
            policy_rc_d: args.int("policy_rc_d"),
            deb,
            upgrade,
            opts,
            host: Arc::clone(ctx.host),
        }))
    }
}

/// apt-get options shared by every transaction of the task.
#[derive(Debug, Clone)]
struct AptOptions {
    install_recommends: Option<bool>,
    default_release: Option<String>,
    allow_downgrade: bool,
    allow_unauthenticated: bool,
    allow_change_held: bool,
    only_upgrade: bool,
    dpkg_options: String,
    lock_timeout: i64,
    update_retries: i64,
    env: Vec<(String, String)>,
}

impl AptOptions {
    fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(program);
        cmd.env("DEBIAN_FRONTEND", "noninteractive")
            .env("DEBCONF_NONINTERACTIVE_SEEN", "true")
            .env("APT_LISTCHANGES_FRONTEND", "none")
            .env("APT_LISTBUGS_FRONTEND", "none")
            .env("LC_ALL", "C.UTF-8");
        cmd.envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        if let Some(r) = &self.default_release {
            cmd.arg("-o").arg(format!("APT::Default-Release={r}"));
        }
        cmd
    }

    /// `apt-get -y -q <options> <verb>`.
    fn apt_get(&self, verb: &str) -> Command {
        let mut cmd = self.command("apt-get");
        cmd.args(["-y", "-q"]);
        for o in self
            .dpkg_options
            .split(',')
            .filter(|o| !o.trim().is_empty())
        {
            cmd.arg("-o").arg(format!("Dpkg::Options::=--{}", o.trim()));
        }
        cmd.arg("-o")
            .arg(format!("DPkg::Lock::Timeout={}", self.lock_timeout));
        match self.install_recommends {
            Some(true) => {
                cmd.arg("-o").arg("APT::Install-Recommends=yes");
            }
            Some(false) => {
                cmd.arg("-o").arg("APT::Install-Recommends=no");
            }
            None => {}
        }
        if self.allow_downgrade {
            cmd.arg("--allow-downgrades");
        }
        if self.allow_unauthenticated {
            cmd.arg("--allow-unauthenticated");
        }
        if self.allow_change_held {
            cmd.arg("--allow-change-held-packages");
        }
        cmd.arg(verb);
        cmd
    }
}

/// A `.deb` to install: a path on the host, or a file of the repository (`files/`) copied to a
/// temporary file when the task runs.
#[derive(Debug)]
struct DebFile {
    path: PathBuf,
    _temp: Option<tempfile::TempPath>,
}

impl DebFile {
    fn locate(deb: &str, ctx: &ModuleContext) -> Result<DebFile, ModuleError> {
        if deb.starts_with('/') {
            return Ok(DebFile {
                path: PathBuf::from(deb),
                _temp: None,
            });
        }
        let (path, _) = super::copy::find_source(ctx, "files", deb)?;
        let bytes = ctx
            .source
            .read(&path)
            .map_err(|e| ModuleError::new(e.to_string()))?
            .ok_or_else(|| ModuleError::new(format!("Could not find or access '{deb}'")))?;
        let mut file = tempfile::Builder::new()
            .prefix("gitops-agent-")
            .suffix(".deb")
            .tempfile()?;
        std::io::Write::write_all(&mut file, &bytes)?;
        let temp = file.into_temp_path();
        Ok(DebFile {
            path: temp.to_path_buf(),
            _temp: Some(temp),
        })
    }

    /// Package, version and architecture from the control file.
    fn control(&self) -> Result<(String, String, String), ModuleError> {
        if !self.path.is_file() {
            return Err(ModuleError::new(format!(
                "deb file {} does not exist",
                self.path.display()
            )));
        }
        let ran = process::run(Command::new("dpkg-deb").arg("-f").arg(&self.path).args([
            "Package",
            "Version",
            "Architecture",
        ]))?;
        if !ran.ok() {
            return Err(ModuleError::new(format!(
                "Unable to install package: {}",
                ran.failure()
            )));
        }
        let field = |k: &str| {
            ran.stdout
                .lines()
                .find_map(|l| l.strip_prefix(k).and_then(|r| r.strip_prefix(':')))
                .map(|v| v.trim().to_string())
                .unwrap_or_default()
        };
        Ok((field("Package"), field("Version"), field("Architecture")))
    }
}

struct AptResource {
    packages: Vec<PkgSpec>,
    state: State,
    update_cache: bool,
    cache_valid_time: Option<Duration>,
    purge: bool,
    autoremove: bool,
    /// `apt-get autoclean` when no package is named (as Ansible: only then).
    autoclean: bool,
    /// The exit code `/usr/sbin/policy-rc.d` gives while apt-get runs (101: services are not
    /// started by the packages' scripts).
    policy_rc_d: Option<i64>,
    deb: Option<DebFile>,
    upgrade: Option<&'static str>,
    opts: AptOptions,
    host: Arc<HostState>,
}

/// A package's versions as `apt-cache policy` reports them.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Policy {
    installed: Option<String>,
    candidate: Option<String>,
    versions: Vec<String>,
}

impl AptResource {
    fn installed(&self, name: &str) -> Result<Vec<InstalledPackage>, ModuleError> {
        self.host.dpkg_installed(name)
    }

    /// Fully installed (not half-configured, not only config files left).
    fn fully_installed(&self, name: &str) -> Result<Option<InstalledPackage>, ModuleError> {
        Ok(self
            .installed(name)?
            .into_iter()
            .find(|p| !p.config_only && p.is_configured()))
    }

    fn cache_is_valid(&self) -> bool {
        let Some(valid) = self.cache_valid_time else {
            return false;
        };
        match cache_mtime() {
            Some(t) => SystemTime::now()
                .duration_since(t)
                .map(|age| age < valid)
                .unwrap_or(true),
            None => false,
        }
    }

    fn policies(&self, names: &[&str]) -> Result<Vec<(String, Policy)>, ModuleError> {
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let mut cmd = self.opts.command("apt-cache");
        cmd.arg("policy").args(names);
        let ran = process::run(&mut cmd)?;
        if !ran.ok() {
            return Err(ModuleError::new(ran.failure()));
        }
        Ok(parse_policy(&ran.stdout))
    }

    /// The package changes, given the current database and lists. `strict`: a package that no
    /// source offers is an error (false while a cache update is still to come).
    fn package_changes(&self, strict: bool) -> Result<Vec<Change>, ModuleError> {
        let mut install = Vec::new();
        let mut upgrade = Vec::new();
        let mut remove = Vec::new();
        let mut to_verify: Vec<&PkgSpec> = Vec::new();
        let mut latest: Vec<&PkgSpec> = Vec::new();
        for p in &self.packages {
            match self.state {
                State::Present | State::Fixed => match self.fully_installed(&p.name)? {
                    Some(inst) => {
                        if let Some(want) = &p.version {
                            if !version_matches(want, &inst.version) {
                                to_verify.push(p);
                            }
                        }
                    }
                    None => {
                        if !self.opts.only_upgrade {
                            to_verify.push(p);
                        }
                    }
                },
                State::Latest => latest.push(p),
                State::Absent => {
                    let present = self
                        .installed(&p.name)?
                        .iter()
                        .any(|i| !i.config_only || self.purge);
                    if present {
                        remove.push(p.name.clone());
                    }
                }
            }
        }
        // One apt-cache call for everything to resolve.
        let asked: Vec<&str> = to_verify
            .iter()
            .chain(latest.iter())
            .map(|p| p.name.as_str())
            .collect();
        let policies = self.policies(&asked)?;
        let policy_of = |name: &str| {
            policies
                .iter()
                .find(|(n, _)| n == name || n.split(':').next() == Some(name))
                .map(|(_, p)| p.clone())
        };
        for p in to_verify {
            let policy = policy_of(&p.name);
            match (&p.version, policy) {
                (None, Some(pol)) if pol.candidate.is_some() => install.push(p.name.clone()),
                (Some(want), Some(pol)) => {
                    match pol.versions.iter().find(|v| version_matches(want, v)) {
                        Some(v) => install.push(format!("{}={v}", p.name)),
                        None if !strict => install.push(p.shown()),
                        None => {
                            return Err(ModuleError::new(format!(
                                "No package matching '{}' is available",
                                p.shown()
                            )))
                        }
                    }
                }
                _ if !strict => install.push(p.shown()),
                _ => {
                    return Err(ModuleError::new(format!(
                        "No package matching '{}' is available",
                        p.name
                    )))
                }
            }
        }
        for p in latest {
            let inst = self.fully_installed(&p.name)?;
            let pol = policy_of(&p.name).unwrap_or_default();
            match (inst, &pol.candidate) {
                (None, _) if self.opts.only_upgrade => {}
                (None, Some(_)) => install.push(p.name.clone()),
                (Some(i), Some(c)) if &i.version != c => upgrade.push(p.name.clone()),
                (Some(_), _) => {}
                (None, None) if !strict => install.push(p.name.clone()),
                (None, None) => {
                    return Err(ModuleError::new(format!(
                        "No package matching '{}' is available",
                        p.name
                    )))
                }
            }
        }
        let remove_op = if self.purge {
            PackageOp::Purge
        } else {
            PackageOp::Remove
        };
        let mut changes = transactions(install, upgrade, remove_op, remove);
        if let Some(deb) = &self.deb {
            let (name, version, _arch) = deb.control()?;
            let same = self
                .fully_installed(&name)?
                .is_some_and(|i| i.version == version);
            if !same {
                changes.push(Change::Package {
                    op: PackageOp::Install,
                    names: vec![deb.path.display().to_string()],
                });
            }
        }
        if let Some(verb) = self.upgrade {
            if self.simulate(verb, &[])? {
                changes.push(Change::Package {
                    op: PackageOp::Upgrade,
                    names: Vec::new(),
                });
            }
        }
        if self.autoremove && self.state != State::Absent && self.simulate("autoremove", &[])? {
            changes.push(Change::Package {
                op: PackageOp::Autoremove,
                names: Vec::new(),
            });
        }
        Ok(changes)
    }

    /// `apt-get -s <verb>`: would it install, upgrade or remove anything?
    fn simulate(&self, verb: &str, names: &[String]) -> Result<bool, ModuleError> {
        let mut cmd = self.opts.apt_get(verb);
        cmd.arg("-s");
        if verb == "upgrade" {
            cmd.arg("--with-new-pkgs");
        }
        cmd.args(names);
        let ran = process::run(&mut cmd)?;
        if !ran.ok() {
            return Err(ModuleError::new(ran.failure()));
        }
        Ok(ran
            .stdout
            .lines()
            .any(|l| l.starts_with("Inst ") || l.starts_with("Remv ") || l.starts_with("Purg ")))
    }

    fn run_apt(&self, change: &Change, log: &mut Log) -> Result<(), TransactionError> {
        let Change::Package { op, names } = change else {
            return Ok(());
        };
        let mut cmd = match op {
            PackageOp::UpdateCache => {
                let mut last = None;
                for _ in 0..self.opts.update_retries {
                    let ran = process::run(&mut self.opts.apt_get("update"))?;
                    if ran.ok() {
                        log.push(ran);
                        return Ok(());
                    }
                    last = Some(ran);
                    std::thread::sleep(Duration::from_millis(500));
                }
                let ran = last.expect("at least one attempt");
                let msg = format!("Failed to update apt cache: {}", ran.stderr.trim());
                log.push(ran);
                return Err(TransactionError::Failed(msg));
            }
            PackageOp::Install | PackageOp::Upgrade => {
                let mut cmd = self.opts.apt_get("install");
                if self.opts.only_upgrade {
                    cmd.arg("--only-upgrade");
                }
                if *op == PackageOp::Upgrade && names.is_empty() {
                    let verb = self.upgrade.unwrap_or("upgrade");
                    let mut c = self.opts.apt_get(verb);
                    if verb == "upgrade" {
                        c.arg("--with-new-pkgs");
                    }
                    c
                } else {
                    if self.state == State::Fixed {
                        cmd.arg("--fix-broken");
                    }
                    cmd
                }
            }
            PackageOp::Remove | PackageOp::Purge => {
                let mut cmd = self.opts.apt_get("remove");
                if *op == PackageOp::Purge {
                    cmd.arg("--purge");
                }
                if self.autoremove {
                    cmd.arg("--auto-remove");
                }
                cmd
            }
            PackageOp::Autoremove => {
                let mut cmd = self.opts.apt_get("autoremove");
                if self.purge {
                    cmd.arg("--purge");
                }
                cmd
            }
        };
        cmd.arg("--").args(names);
        run_transaction(&mut cmd, &self.host, &mut log.0)
    }

    fn result(&self, log: &Log, cache_updated: bool) -> Outcome {
        let mut out = Outcome::default()
            .with("cache_updated", cache_updated)
            .with(
                "cache_update_time",
                cache_mtime()
                    .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
                    .map(|d| d.as_secs())
                    .unwrap_or(0),
            );
        if !log.0.is_empty() {
            let stdout: String = log.0.iter().map(|r| r.stdout.as_str()).collect();
            let stderr: String = log.0.iter().map(|r| r.stderr.as_str()).collect();
            out = out
                .with("stdout", stdout.as_str())
                .with("stderr", stderr.as_str())
                .with(
                    "stdout_lines",
                    Value::from(stdout.lines().map(Value::from).collect::<Vec<_>>()),
                )
                .with(
                    "stderr_lines",
                    Value::from(stderr.lines().map(Value::from).collect::<Vec<_>>()),
                );
            if let Some(last) = log.0.last() {
                out = out.with("rc", last.rc);
            }
        }
        out
    }
}

#[derive(Default)]
struct Log(Vec<Ran>);

impl Log {
    fn push(&mut self, r: Ran) {
        self.0.push(r)
    }
}

impl Resource for AptResource {
    fn check(&self) -> Result<Check, ModuleError> {
        let mut changes = Vec::new();
        let update = self.update_cache && !self.cache_is_valid();
        if update {
            changes.push(Change::Package {
                op: PackageOp::UpdateCache,
                names: Vec::new(),
            });
        }
        // With an update still to come, the lists may not know a package yet: let apply decide.
        changes.extend(self.package_changes(!update)?);
        if self.autoclean && self.packages.is_empty() && self.autoclean_would_delete()? {
            changes.push(self.autoclean_change());
        }
        Ok(Check::new(changes, self.result(&Log::default(), false)))
    }

    fn apply(&self, check: Check) -> Result<Outcome, ModuleError> {
        let changes = &check.changes;
        let mut log = Log::default();
        let mut cache_updated = false;
        let mut todo: Vec<Change> = changes.to_vec();
        if let Some(pos) = todo.iter().position(is_update) {
            todo.remove(pos);
            let before = cache_mtime();
            if let Err(msg) = self.run_apt(
                &Change::Package {
                    op: PackageOp::UpdateCache,
                    names: Vec::new(),
                },
                &mut log,
            ) {
                let mut out = self.result(&log, false);
                out.failed = Some(msg.to_string());
                return Ok(out);
            }
            // As Ansible: the cache counts as updated when its timestamp moved (apt-get update
            // that found nothing new leaves /var/lib/apt/lists as it was).
            cache_updated = cache_mtime() != before;
            // The lists may have changed: what to install or upgrade is decided again, now strictly.
            todo = match self.package_changes(true) {
                Ok(c) => c,
                Err(e) => {
                    let mut out = self.result(&log, cache_updated);
                    out.failed = Some(e.0);
                    return Ok(out);
                }
            };
            if todo.is_empty() {
                let mut out = self.result(&log, cache_updated);
                out.changed = Some(cache_updated);
                return Ok(out);
            }
        }
        let _policy = match self.policy_rc_d {
            Some(code) if !todo.is_empty() => Some(PolicyRcD::install(code)?),
            _ => None,
        };
        for change in &todo {
            if let Change::Exec { argv, .. } = change {
                let mut cmd = self.opts.command(AUTOCLEAN_PROGRAM);
                cmd.args(&argv[1..]);
                let ran = process::run(&mut cmd)?;
                let ok = ran.ok();
                let msg = format!("'apt-get autoclean' failed: {}", ran.stderr.trim());
                log.push(ran);
                if !ok {
                    let mut out = self.result(&log, cache_updated);
                    out.failed = Some(msg);
                    return Ok(out);
                }
                continue;
            }
            if let Err(msg) = self.run_apt(change, &mut log) {
                let mut out = self.result(&log, cache_updated);
                out.failed = Some(msg.to_string());
                return Ok(out);
            }
        }
        Ok(self.result(&log, cache_updated))
    }

    fn owns(&self) -> Vec<Owned> {
        self.packages
            .iter()
            .map(|p| Owned::Package(p.name.clone()))
            .collect()
    }
}

const AUTOCLEAN_PROGRAM: &str = "apt-get";

impl AptResource {
    /// `apt-get autoclean` as Ansible runs it (dpkg options, `--purge`), with `extra` appended.
    fn autoclean_argv(&self, extra: Option<&str>) -> Vec<String> {
        let mut argv = vec![AUTOCLEAN_PROGRAM.to_string(), "-y".to_string()];
        for o in self
            .opts
            .dpkg_options
            .split(',')
            .filter(|o| !o.trim().is_empty())
        {
            argv.push("-o".into());
            argv.push(format!("Dpkg::Options::=--{}", o.trim()));
        }
        if self.purge {
            argv.push("--purge".into());
        }
        argv.push("autoclean".into());
        argv.extend(extra.map(str::to_string));
        argv
    }

    fn autoclean_change(&self) -> Change {
        Change::Exec {
            argv: self.autoclean_argv(None),
            summary: "apt-get autoclean (delete obsolete downloaded packages)".into(),
        }
    }

    /// As Ansible: autoclean changes something when it would print a `Del ` line.
    fn autoclean_would_delete(&self) -> Result<bool, ModuleError> {
        let argv = self.autoclean_argv(Some("--simulate"));
        let mut cmd = self.opts.command(AUTOCLEAN_PROGRAM);
        cmd.args(&argv[1..]);
        let ran = process::run(&mut cmd)?;
        if !ran.ok() {
            return Err(ModuleError::new(format!(
                "'apt-get autoclean' failed: {}",
                ran.stderr.trim()
            )));
        }
        Ok(ran.stdout.contains("Del "))
    }
}

/// `/usr/sbin/policy-rc.d` answering `exit <code>` while apt-get runs, as Ansible's `PolicyRcD`:
/// an existing one is moved aside and put back afterwards (also when apt-get fails).
struct PolicyRcD {
    backup: Option<(tempfile::TempDir, PathBuf)>,
}

const POLICY_RC_D: &str = "/usr/sbin/policy-rc.d";

impl PolicyRcD {
    fn install(code: i64) -> Result<PolicyRcD, ModuleError> {
        use std::os::unix::fs::PermissionsExt;
        let path = Path::new(POLICY_RC_D);
        let backup = if path.exists() {
            let dir = tempfile::Builder::new().prefix("ansible").tempdir()?;
            let saved = dir.path().join("policy-rc.d");
            std::fs::copy(path, &saved).map_err(|e| {
                ModuleError::new(format!(
                    "Fail to move {POLICY_RC_D} to {}: {e}",
                    saved.display()
                ))
            })?;
            Some((dir, saved))
        } else {
            None
        };
        let guard = PolicyRcD { backup };
        std::fs::write(path, format!("#!/bin/sh\nexit {code}\n"))
            .and_then(|()| std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)))
            .map_err(|e| {
                ModuleError::new(format!("Failed to create or chmod {POLICY_RC_D}: {e}"))
            })?;
        Ok(guard)
    }
}

impl Drop for PolicyRcD {
    fn drop(&mut self) {
        let path = Path::new(POLICY_RC_D);
        // Failures here cannot fail the task any more; they are reported on stderr.
        let restored = match &self.backup {
            Some((_, saved)) => std::fs::copy(saved, path).map(|_| ()),
            None => std::fs::remove_file(path),
        };
        if let Err(e) = restored {
            eprintln!("gitops-agent: could not restore {POLICY_RC_D}: {e}");
        }
    }
}

fn is_update(c: &Change) -> bool {
    matches!(
        c,
        Change::Package {
            op: PackageOp::UpdateCache,
            ..
        }
    )
}

/// When the package lists were last updated, as Ansible's apt module reads it.
fn cache_mtime() -> Option<SystemTime> {
    [
        "/var/lib/apt/periodic/update-success-stamp",
        "/var/lib/apt/lists",
    ]
    .iter()
    .find_map(|p| {
        std::fs::metadata(Path::new(p))
            .and_then(|m| m.modified())
            .ok()
    })
}

/// `1.0*` matches `1.0-2`; without a glob the version must be equal.
fn version_matches(want: &str, have: &str) -> bool {
    if want.contains(['*', '?', '[']) {
        super::command::fnmatch(want.as_bytes(), have.as_bytes())
    } else {
        want == have
    }
}

/// Parses `apt-cache policy a b ...`; packages apt does not know are simply absent.
fn parse_policy(text: &str) -> Vec<(String, Policy)> {
    let mut out: Vec<(String, Policy)> = Vec::new();
    let mut in_table = false;
    for line in text.lines() {
        if !line.starts_with(' ') {
            if let Some(name) = line.strip_suffix(':') {
                out.push((name.to_string(), Policy::default()));
                in_table = false;
            }
            continue;
        }
        let Some((_, pol)) = out.last_mut() else {
            continue;
        };
        let t = line.trim();
        let none = |v: &str| (v != "(none)").then(|| v.to_string());
        if let Some(v) = t.strip_prefix("Installed:") {
            pol.installed = none(v.trim());
        } else if let Some(v) = t.strip_prefix("Candidate:") {
            pol.candidate = none(v.trim());
        } else if t.starts_with("Version table:") {
            in_table = true;
        } else if in_table {
            // Version lines are indented 5 (with `*** ` marking the installed one); their
            // source lines are indented 8 and start with a priority number.
            let v = t.strip_prefix("*** ").unwrap_or(t);
            let indent = line.len() - line.trim_start().len();
            if indent <= 5 || t.starts_with("*** ") {
                if let Some(ver) = v.split_whitespace().next() {
                    pol.versions.push(ver.to_string());
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_pins_and_refuse_globs() {
        let p = PkgSpec::parse("nginx=1.22*").unwrap();
        assert_eq!(p.name, "nginx");
        assert_eq!(p.version.as_deref(), Some("1.22*"));
        assert!(PkgSpec::parse("ngi*").is_err());
        assert!(PkgSpec::parse("a b").is_err());
        assert_eq!(PkgSpec::parse("libc6:amd64").unwrap().name, "libc6:amd64");
    }

    #[test]
    fn versions_match_exact_or_glob() {
        assert!(version_matches("1.0", "1.0"));
        assert!(!version_matches("1.0", "1.0-1"));
        assert!(version_matches("1.0*", "1.0-1"));
        assert!(!version_matches("2*", "1.0-1"));
    }

    #[test]
    fn policy_output_is_parsed() {
        let text = "gatest-hello:\n  Installed: 1.0\n  Candidate: 2.0\n  Version table:\n     2.0 500\n        500 file:/repo ./ Packages\n *** 1.0 500\n        500 file:/repo ./ Packages\n        100 /var/lib/dpkg/status\n\
                    gatest-virtual:\n  Installed: (none)\n  Candidate: (none)\n  Version table:\n";
        let p = parse_policy(text);
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].0, "gatest-hello");
        assert_eq!(p[0].1.installed.as_deref(), Some("1.0"));
        assert_eq!(p[0].1.candidate.as_deref(), Some("2.0"));
        assert_eq!(p[0].1.versions, vec!["2.0", "1.0"]);
        assert_eq!(p[1].1.candidate, None);
    }
}
