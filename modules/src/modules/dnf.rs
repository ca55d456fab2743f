//! The `dnf` module (also answering to `yum`): RPM packages through the dnf command line.
//!
//! Check asks the rpm database (one `rpm -q` for every package named in the playbook, shared
//! through [`HostState`]); `state: latest` also asks `dnf check-update` for the packages that
//! are installed. Apply is one dnf transaction per kind of change. `installroot` and
//! `releasever` work as in Ansible, which is also how the tests run dnf on a Debian host.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;

use minijinja::Value;

use super::pkg::{run_transaction, transactions, TransactionError};
use crate::args::{ArgDef, ArgSpec, ArgType, Args};
use crate::host::{HostQueries, HostState};
use crate::process::{self, Ran};
use crate::resource::{
    Change, Check, Module, ModuleContext, ModuleError, Outcome, Owned, PackageOp, Resource,
};
use indexmap::IndexMap;

pub struct DnfModule;

static SPEC: ArgSpec = ArgSpec {
    module: "dnf",
    args: &[
        ArgDef::new("name", ArgType::List).aliases(&["pkg"]),
        ArgDef::new("state", ArgType::Str).choices(&[
            "absent",
            "present",
            "installed",
            "removed",
            "latest",
        ]),
        ArgDef::new("enablerepo", ArgType::List),
        ArgDef::new("disablerepo", ArgType::List),
        ArgDef::new("conf_file", ArgType::Path),
        ArgDef::new("disable_gpg_check", ArgType::Bool),
        ArgDef::new("installroot", ArgType::Path),
        ArgDef::new("releasever", ArgType::Str),
        ArgDef::new("autoremove", ArgType::Bool),
        ArgDef::new("exclude", ArgType::List),
        ArgDef::new("skip_broken", ArgType::Bool),
        ArgDef::new("update_cache", ArgType::Bool).aliases(&["expire-cache"]),
        ArgDef::new("update_only", ArgType::Bool),
        ArgDef::new("allow_downgrade", ArgType::Bool),
        ArgDef::new("install_weak_deps", ArgType::Bool),
        ArgDef::new("nobest", ArgType::Bool),
        ArgDef::new("allowerasing", ArgType::Bool),
        ArgDef::new("cacheonly", ArgType::Bool),
    ],
    free_form: false,
    mutually_exclusive: &[],
    // Ansible's required_one_of here names an argument with a default (set before the check
    // runs), so it never fails: `systemd: name=x` alone reports the unit's status,
    // `apt: cache_valid_time=N` alone updates the cache.
    required_one_of: &[],
};

impl Module for DnfModule {
    fn spec(&self) -> &'static ArgSpec {
        &SPEC
    }

    fn host_queries(&self, args: &IndexMap<String, Value>, queries: &mut HostQueries) {
        queries.packages_named(args);
    }

    fn prepare(&self, args: &Args, ctx: &ModuleContext) -> Result<Box<dyn Resource>, ModuleError> {
        let autoremove = args.bool_or("autoremove", false);
        let state = match args.str("state").as_deref() {
            None if autoremove => State::Absent,
            None | Some("present") | Some("installed") => State::Present,
            Some("latest") => State::Latest,
            Some("absent") | Some("removed") => State::Absent,
            Some(o) => return Err(ModuleError::new(format!("unsupported state {o}"))),
        };
        let names: Vec<String> = args
            .list_str("name")
            .unwrap_or_default()
            .into_iter()
            .map(|n| n.trim().to_string())
            .filter(|n| !n.is_empty())
            .collect();
        if let Some(n) = names.iter().find(|n| n.starts_with('@')) {
            return Err(ModuleError::new(format!(
                "package groups and modules are not supported: '{n}'"
            )));
        }
        if autoremove && state != State::Absent {
            return Err(ModuleError::new(
                "Autoremove should be used alone or with state=absent",
            ));
        }
        let mut global = Vec::new();
        global.push("-y".to_string());
        let root = PathBuf::from(args.str("installroot").unwrap_or_else(|| "/".into()));
        if root != std::path::Path::new("/") {
            global.push(format!("--installroot={}", root.display()));
        }
        if let Some(r) = args.str("releasever") {
            global.push(format!("--releasever={r}"));
        }
        if let Some(c) = args.str("conf_file") {
            global.push(format!("--config={c}"));
        }
        for r in args.list_str("disablerepo").unwrap_or_default() {
            global.push(format!("--disablerepo={r}"));
        }
        for r in args.list_str("enablerepo").unwrap_or_default() {
            global.push(format!("--enablerepo={r}"));
        }
        for e in args.list_str("exclude").unwrap_or_default() {
            global.push(format!("--exclude={e}"));
        }
        if args.bool_or("disable_gpg_check", false) {
            global.push("--nogpgcheck".into());
        }
        if args.bool_or("cacheonly", false) {
            global.push("--cacheonly".into());
        }
        if args.bool("install_weak_deps") == Some(false) {
            global.push("--setopt=install_weak_deps=False".into());
        }
        let mut transaction = Vec::new();
        if args.bool_or("skip_broken", false) {
            transaction.push("--skip-broken".to_string());
        }
        if args.bool_or("nobest", false) {
            transaction.push("--nobest".into());
        }
        if args.bool_or("allowerasing", false) {
            transaction.push("--allowerasing".into());
        }
        Ok(Box::new(DnfResource {
            names,
            state,
            root,
            global,
            transaction,
            update_cache: args.bool_or("update_cache", false),
            update_only: args.bool_or("update_only", false),
            allow_downgrade: args.bool_or("allow_downgrade", false),
            autoremove,
            env: ctx.env.to_vec(),
            host: Arc::clone(ctx.host),
        }))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Present,
    Latest,
    Absent,
}

struct DnfResource {
    names: Vec<String>,
    state: State,
    root: PathBuf,
    /// Options for every dnf call (`-y`, `--installroot`, repos, ...).
    global: Vec<String>,
    /// Options for install/upgrade transactions only.
    transaction: Vec<String>,
    update_cache: bool,
    update_only: bool,
    allow_downgrade: bool,
    autoremove: bool,
    env: Vec<(String, String)>,
    host: Arc<HostState>,
}

impl DnfResource {
    fn dnf(&self, verb: &str) -> Command {
        let mut cmd = Command::new("dnf");
        cmd.env("LC_ALL", "C.UTF-8");
        cmd.envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        cmd.args(&self.global);
        if self.update_cache && verb != "makecache" {
            cmd.arg("--refresh");
        }
        cmd.arg(verb);
        cmd
    }

    fn installed(&self, spec: &str) -> Result<bool, ModuleError> {
        if spec.ends_with(".rpm") || spec.contains("://") {
            // A file or URL: its package name is known only after reading it.
            let name = rpm_file_name(spec)?;
            return Ok(!self.host.rpm_installed(&self.root, &name)?.is_empty());
        }
        if !self.host.rpm_installed(&self.root, spec)?.is_empty() {
            return Ok(true);
        }
        // `name-1.0` while another version of `name` is installed: as Ansible, a newer one
        // satisfies it unless `allow_downgrade`; an older one is upgraded.
        if !self.allow_downgrade {
            for (name, want) in versioned_spec_parts(spec) {
                let found = self.host.rpm_installed(&self.root, name)?;
                if found
                    .iter()
                    .any(|p| rpm_vercmp(strip_epoch(&p.version), want).is_ge())
                {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }

    /// Installed packages among `names` for which the repositories offer an update.
    fn upgradable(&self, names: &[String]) -> Result<Vec<String>, ModuleError> {
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let mut cmd = self.dnf("check-update");
        cmd.arg("-q").arg("--").args(names);
        let ran = process::run(&mut cmd)?;
        match ran.rc {
            0 => Ok(Vec::new()),
            // 100: updates are available, one line each: `name.arch  version  repo`.
            100 => Ok(names
                .iter()
                .filter(|n| {
                    ran.stdout.lines().any(|l| {
                        let first = l.split_whitespace().next().unwrap_or("");
                        let base = first.rsplit_once('.').map(|(b, _)| b).unwrap_or(first);
                        base == n.as_str() || first == n.as_str()
                    })
                })
                .cloned()
                .collect()),
            _ => Err(ModuleError::new(ran.failure())),
        }
    }

    fn run(&self, change: &Change, log: &mut Vec<Ran>) -> Result<(), TransactionError> {
        let Change::Package { op, names } = change else {
            return Ok(());
        };
        let mut cmd = match op {
            PackageOp::UpdateCache => self.dnf("makecache"),
            PackageOp::Install => {
                let mut c = self.dnf("install");
                c.args(&self.transaction);
                c
            }
            PackageOp::Upgrade => {
                let mut c = self.dnf("upgrade");
                c.args(&self.transaction);
                c
            }
            PackageOp::Remove | PackageOp::Purge => self.dnf("remove"),
            PackageOp::Autoremove => self.dnf("autoremove"),
        };
        if !names.is_empty() {
            cmd.arg("--").args(names);
        }
        run_transaction(&mut cmd, &self.host, log)
    }
}

impl Resource for DnfResource {
    fn check(&self) -> Result<Check, ModuleError> {
        let mut install = Vec::new();
        let mut installed = Vec::new();
        let mut remove = Vec::new();
        for n in &self.names {
            let is = self.installed(n)?;
            match self.state {
                State::Present | State::Latest if !is => {
                    if !self.update_only {
                        install.push(n.clone())
                    }
                }
                State::Present | State::Latest => installed.push(n.clone()),
                State::Absent if is => remove.push(n.clone()),
                State::Absent => {}
            }
        }
        let mut changes = Vec::new();
        let mut only_cache = false;
        if self.update_cache && self.names.is_empty() {
            changes.push(Change::Package {
                op: PackageOp::UpdateCache,
                names: Vec::new(),
            });
            only_cache = true;
        }
        let upgrade = if self.state == State::Latest {
            self.upgradable(&installed)?
        } else {
            Vec::new()
        };
        changes.extend(transactions(install, upgrade, PackageOp::Remove, remove));
        if self.autoremove && self.names.is_empty() {
            changes.push(Change::Package {
                op: PackageOp::Autoremove,
                names: Vec::new(),
            });
        }
        let mut outcome = result(&[]);
        if only_cache && changes.len() == 1 {
            // Ansible: refreshing the cache alone is not a change.
            outcome.changed = Some(false);
        }
        Ok(Check::new(changes, outcome))
    }

    fn apply(&self, check: Check) -> Result<Outcome, ModuleError> {
        let changes = &check.changes;
        let mut log = Vec::new();
        for c in changes {
            if let Err(msg) = self.run(c, &mut log) {
                let mut out = result(&log);
                out.failed = Some(msg.to_string());
                return Ok(out);
            }
        }
        let mut out = result(&log);
        if changes.len() == 1
            && matches!(
                changes[0],
                Change::Package {
                    op: PackageOp::UpdateCache,
                    ..
                }
            )
        {
            out.changed = Some(false);
            out = out.with("msg", "Cache updated");
        }
        if let [.., Change::Package {
            op: PackageOp::Autoremove,
            ..
        }] = changes.as_slice()
        {
            // dnf autoremove with nothing to remove says so; that is not a change.
            if log
                .last()
                .is_some_and(|r| r.stdout.contains("Nothing to do"))
            {
                out.changed = Some(false);
            }
        }
        Ok(out)
    }

    fn owns(&self) -> Vec<Owned> {
        self.names
            .iter()
            .map(|n| Owned::Package(n.clone()))
            .collect()
    }
}

fn result(log: &[Ran]) -> Outcome {
    let stdout: String = log.iter().map(|r| r.stdout.as_str()).collect();
    let stderr: String = log.iter().map(|r| r.stderr.as_str()).collect();
    let mut out = Outcome::default().with(
        "results",
        Value::from(
            stdout
                .lines()
                .filter(|l| l.starts_with("Installed:") || l.starts_with("Removed:"))
                .map(Value::from)
                .collect::<Vec<_>>(),
        ),
    );
    if let Some(last) = log.last() {
        out = out
            .with("rc", last.rc)
            .with("stdout", stdout.as_str())
            .with("stderr", stderr.as_str());
    }
    out
}

/// For `name-ver` and `name-ver-rel`, the possible (name, version[-release]) readings: the
/// split points are dashes followed by a digit.
fn versioned_spec_parts(spec: &str) -> Vec<(&str, &str)> {
    let spec = spec
        .rsplit_once('.')
        .filter(|(_, arch)| matches!(*arch, "noarch" | "x86_64" | "aarch64" | "i686" | "src"))
        .map(|(s, _)| s)
        .unwrap_or(spec);
    spec.match_indices('-')
        .filter(|(i, _)| spec[i + 1..].starts_with(|c: char| c.is_ascii_digit()))
        .map(|(i, _)| (&spec[..i], &spec[i + 1..]))
        .collect()
}

fn strip_epoch(v: &str) -> &str {
    v.split_once(':').map(|(_, r)| r).unwrap_or(v)
}

/// rpm's version comparison (`rpmvercmp`) of `version[-release]` strings: alphanumeric segments,
/// numbers compared as numbers, letters as text, `~` sorting before anything. Written here
/// because no maintained crate implements it; when only one side has a release, the releases
/// are not compared (as rpm does for a version-only request).
fn rpm_vercmp(a: &str, b: &str) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    let (av, ar) = a.split_once('-').map_or((a, None), |(v, r)| (v, Some(r)));
    let (bv, br) = b.split_once('-').map_or((b, None), |(v, r)| (v, Some(r)));
    match vercmp_part(av, bv) {
        Ordering::Equal => match (ar, br) {
            (Some(x), Some(y)) => vercmp_part(x, y),
            _ => Ordering::Equal,
        },
        o => o,
    }
}

fn vercmp_part(a: &str, b: &str) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    loop {
        let skip = |s: &[u8]| {
            let n = s
                .iter()
                .take_while(|c| !c.is_ascii_alphanumeric() && **c != b'~')
                .count();
            n
        };
        a = &a[skip(a)..];
        b = &b[skip(b)..];
        match (a.first(), b.first()) {
            (Some(b'~'), Some(b'~')) => {
                a = &a[1..];
                b = &b[1..];
                continue;
            }
            (Some(b'~'), _) => return Ordering::Less,
            (_, Some(b'~')) => return Ordering::Greater,
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            _ => {}
        }
        let numeric = a[0].is_ascii_digit();
        let seg = |s: &[u8]| {
            s.iter()
                .take_while(|c| {
                    if numeric {
                        c.is_ascii_digit()
                    } else {
                        c.is_ascii_alphabetic()
                    }
                })
                .count()
        };
        let (na, nb) = (seg(a), seg(b));
        if nb == 0 {
            // Different kinds of segment: a number is newer than letters.
            return if numeric {
                Ordering::Greater
            } else {
                Ordering::Less
            };
        }
        let (sa, sb) = (&a[..na], &b[..nb]);
        let ord = if numeric {
            let trim = |s: &[u8]| {
                let z = s.iter().take_while(|c| **c == b'0').count();
                s[z..].to_vec()
            };
            let (ta, tb) = (trim(sa), trim(sb));
            ta.len().cmp(&tb.len()).then(ta.cmp(&tb))
        } else {
            sa.cmp(sb)
        };
        if ord != Ordering::Equal {
            return ord;
        }
        a = &a[na..];
        b = &b[nb..];
    }
}

/// The package name inside an .rpm file (`rpm -qp`).
fn rpm_file_name(path: &str) -> Result<String, ModuleError> {
    let ran = process::run(
        Command::new("rpm")
            .args(["-qp", "--qf", "%{NAME}-%{VERSION}-%{RELEASE}"])
            .arg(path),
    )?;
    if !ran.ok() {
        return Err(ModuleError::new(ran.failure()));
    }
    Ok(ran.stdout.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cmp::Ordering::*;

    #[test]
    fn rpm_versions_compare_like_rpmvercmp() {
        assert_eq!(rpm_vercmp("2.0-1", "1.0"), Greater);
        assert_eq!(rpm_vercmp("1.0-1", "1.0"), Equal);
        assert_eq!(rpm_vercmp("1.10", "1.9"), Greater);
        assert_eq!(rpm_vercmp("1.0~rc1", "1.0"), Less);
        assert_eq!(rpm_vercmp("1.0a", "1.0"), Greater);
        assert_eq!(rpm_vercmp("1.0-2", "1.0-10"), Less);
        assert_eq!(rpm_vercmp("1.01", "1.1"), Equal);
    }

    #[test]
    fn versioned_specs_split_at_digit_dashes() {
        assert_eq!(
            versioned_spec_parts("gatest-hello-1.0-1.noarch"),
            vec![("gatest-hello", "1.0-1"), ("gatest-hello-1.0", "1")]
        );
        assert!(versioned_spec_parts("gatest-hello").is_empty());
    }
}
