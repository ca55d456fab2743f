//! The `timezone` module (`community.general.timezone`), as its `timezone.py` on Linux:
//!
//! - with a usable `timedatectl` (it runs and exits 0): the zone is read from `timedatectl
//!   status` (`Time zone: NAME (...)`) and set with `timedatectl set-timezone NAME`;
//! - otherwise on Debian and derivatives (`dpkg-reconfigure` on the PATH): the zone is the
//!   first word of `/etc/timezone`, checked against the `/etc/localtime` link (or its content);
//!   setting it rewrites `/etc/timezone`, links `/etc/localtime` to the zone file and runs
//!   `dpkg-reconfigure --frontend noninteractive tzdata`;
//! - the zone must exist as `/usr/share/zoneinfo/NAME`; after a change the zone is read again
//!   and must be the one asked for.
//!
//! Refused when reached: `hwclock` (`rtc`), and hosts with neither `timedatectl` nor
//! `dpkg-reconfigure`. The result has `diff` (`before`/`after`: `{name: ...}`) and `msg`.

use std::path::PathBuf;
use std::sync::Arc;

use minijinja::Value;

use super::systool::{bin_path, dict, exec, query, run_exec};
use crate::args::{ArgDef, ArgSpec, ArgType, Args};
use crate::resource::{Change, Check, Module, ModuleContext, ModuleError, Outcome, Resource};

pub struct TimezoneModule;

static SPEC: ArgSpec = ArgSpec {
    module: "timezone",
    args: &[
        ArgDef::new("name", ArgType::Str),
        ArgDef::new("hwclock", ArgType::Str)
            .aliases(&["rtc"])
            .choices(&["local", "UTC"]),
    ],
    free_form: false,
    mutually_exclusive: &[],
    required_one_of: &[&["hwclock", "name"]],
};

/// The files of the Debian strategy (under a scratch root in the unit tests).
#[derive(Debug, Clone)]
struct Files {
    timezone: PathBuf,
    localtime: PathBuf,
    zoneinfo: PathBuf,
}

impl Files {
    fn system() -> Files {
        Files {
            timezone: "/etc/timezone".into(),
            localtime: "/etc/localtime".into(),
            zoneinfo: "/usr/share/zoneinfo".into(),
        }
    }
}

#[derive(Debug, Clone)]
enum Strategy {
    /// `timedatectl`, by its full path (as the result's `msg` names it).
    Systemd(String),
    /// `/etc/timezone` + `/etc/localtime` + `dpkg-reconfigure`.
    Debian,
}

impl Module for TimezoneModule {
    fn spec(&self) -> &'static ArgSpec {
        &SPEC
    }

    fn prepare(&self, args: &Args, _ctx: &ModuleContext) -> Result<Box<dyn Resource>, ModuleError> {
        if args.has("hwclock") {
            return Err(ModuleError::new(
                "timezone: hwclock is not supported by the agent (only name)",
            ));
        }
        Ok(Box::new(TimezoneResource {
            name: args.str("name").unwrap_or_default(),
            files: Files::system(),
            strategy: None,
        }))
    }
}

struct TimezoneResource {
    name: String,
    files: Files,
    /// Chosen in `check` (it runs `timedatectl`); fixed in the unit tests.
    strategy: Option<Strategy>,
}

/// `Timezone.abort`'s message.
fn abort(msg: &str, log: &[String]) -> ModuleError {
    let mut lines = vec!["Error message:".to_string(), msg.to_string()];
    if !log.is_empty() {
        lines.push("Other message(s):".into());
        lines.extend(log.iter().cloned());
    }
    ModuleError::new(lines.join("\n"))
}

fn choose_strategy() -> Result<Strategy, ModuleError> {
    if let Some(tdc) = bin_path("timedatectl") {
        if query(&[tdc.as_str()])?.ok() {
            return Ok(Strategy::Systemd(tdc));
        }
    }
    if bin_path("dpkg-reconfigure").is_some() {
        return Ok(Strategy::Debian);
    }
    Err(ModuleError::new(
        "timezone: without a usable timedatectl, only Debian's /etc/timezone and \
         dpkg-reconfigure are supported by the agent",
    ))
}

/// The zone in `timedatectl status`'s output.
fn zone_in_status(status: &str) -> Option<String> {
    status.lines().find_map(|l| {
        let l = l.trim_start();
        let rest = l
            .strip_prefix("Time zone")
            .or_else(|| l.strip_prefix("Timezone"))?;
        let value = rest
            .trim_start()
            .strip_prefix(':')?
            .split_whitespace()
            .next()?;
        Some(value.to_string())
    })
}

/// The first word of the first line of `/etc/timezone` that starts with one.
fn zone_in_file(text: &str) -> Option<String> {
    text.lines()
        .find(|l| l.chars().next().is_some_and(|c| !c.is_whitespace()))
        .and_then(|l| l.split_whitespace().next())
        .map(str::to_string)
}

/// `_edit_file` for `/etc/timezone`: every line starting with a word goes, the zone line takes
/// the place of the first. Returns the text and how many lines were deleted.
fn edit_timezone_file(text: &str, zone: &str) -> (String, usize) {
    let mut lines: Vec<String> = text.split_inclusive('\n').map(str::to_string).collect();
    let matched: Vec<usize> = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l.chars().next().is_some_and(|c| !c.is_whitespace()))
        .map(|(i, _)| i)
        .collect();
    let at = matched.first().copied().unwrap_or(0);
    for i in matched.iter().rev() {
        lines.remove(*i);
    }
    lines.insert(at, format!("{zone}\n"));
    (lines.concat(), matched.len())
}

impl TimezoneResource {
    fn zonefile(&self) -> PathBuf {
        self.files.zoneinfo.join(&self.name)
    }

    /// The zone now, as `get('name', phase)` reads it (`n/a` when unknown).
    fn current(
        &self,
        strategy: &Strategy,
        after: bool,
        log: &[String],
    ) -> Result<String, ModuleError> {
        match strategy {
            Strategy::Systemd(tdc) => {
                let ran = query(&[tdc.as_str(), "status"])?;
                if !ran.ok() {
                    return Err(ModuleError::new(ran.failure()));
                }
                zone_in_status(&ran.stdout).ok_or_else(|| {
                    ModuleError::new(format!("no time zone in `{tdc} status`: {}", ran.stdout))
                })
            }
            Strategy::Debian => self.current_debian(after, log),
        }
    }

    fn current_debian(&self, after: bool, log: &[String]) -> Result<String, ModuleError> {
        let file = &self.files.timezone;
        let text = match std::fs::read_to_string(file) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok("n/a".into()),
            Err(_) => {
                return Err(abort(
                    &format!(
                        "tried to configure name using a file \"{}\", but could not read it",
                        file.display()
                    ),
                    log,
                ))
            }
        };
        let Some(value) = zone_in_file(&text) else {
            if after {
                return Err(abort(
                    &format!(
                        "tried to configure name using a file \"{}\", but could not find a valid value in it",
                        file.display()
                    ),
                    log,
                ));
            }
            return Ok("n/a".into());
        };
        if value != self.name {
            return Ok(value);
        }
        let localtime = &self.files.localtime;
        let is_link =
            std::fs::symlink_metadata(localtime).is_ok_and(|m| m.file_type().is_symlink());
        if is_link {
            if !localtime.exists() {
                return Ok("n/a".into());
            }
            let target = std::fs::read_link(localtime)?.display().to_string();
            return Ok(match zone_in_link(&target) {
                Some(linked) if linked != self.name => linked,
                Some(_) => value,
                None => "n/a".into(),
            });
        }
        let same = match (std::fs::read(localtime), std::fs::read(self.zonefile())) {
            (Ok(a), Ok(b)) => a == b,
            _ => false,
        };
        Ok(if same { value } else { "n/a".into() })
    }
}

/// The zone a `/etc/localtime` link points to (`.../usr/share/zoneinfo/NAME` or
/// `.../etc/zoneinfo/NAME`).
fn zone_in_link(target: &str) -> Option<String> {
    ["/usr/share/zoneinfo/", "/etc/zoneinfo/"]
        .iter()
        .filter_map(|m| target.find(m).map(|i| (i, m.len())))
        .min()
        .map(|(i, n)| target[i + n..].to_string())
}

fn name_dict(name: &str) -> Value {
    dict([("name", Value::from(name))])
}

impl Resource for TimezoneResource {
    fn check(&self) -> Result<Check, ModuleError> {
        let strategy = match &self.strategy {
            Some(s) => s.clone(),
            None => choose_strategy()?,
        };
        if !self.zonefile().is_file() {
            return Err(abort(
                &format!("given timezone \"{}\" is not available", self.name),
                &[],
            ));
        }
        let before = self.current(&strategy, false, &[])?;
        let mut changes = Vec::new();
        let mut msg = Vec::new();
        if before != self.name {
            match &strategy {
                Strategy::Systemd(tdc) => {
                    changes.push(exec(
                        &[tdc.as_str(), "set-timezone", &self.name],
                        format!("set the time zone to {}", self.name),
                    ));
                    msg.push(format!("executed `{tdc} set-timezone {}`", self.name));
                }
                Strategy::Debian => {
                    let old = std::fs::read(&self.files.timezone).ok();
                    let text = old
                        .as_ref()
                        .map(|b| String::from_utf8_lossy(b).into_owned())
                        .unwrap_or_default();
                    let (new, deleted) = edit_timezone_file(&text, &self.name);
                    changes.push(Change::WriteFile {
                        path: self.files.timezone.clone(),
                        content: Arc::from(new.into_bytes()),
                        before: old.map(Arc::from),
                        attrs: Default::default(),
                        backup: false,
                        validate: None,
                    });
                    msg.push(format!(
                        "Added 1 line and deleted {deleted} line(s) on {}",
                        self.files.timezone.display()
                    ));
                    changes.push(Change::Symlink {
                        path: self.files.localtime.clone(),
                        target: self.zonefile().display().to_string(),
                        replace: true,
                    });
                    changes.push(exec(
                        &["dpkg-reconfigure", "--frontend", "noninteractive", "tzdata"],
                        "dpkg-reconfigure tzdata",
                    ));
                }
            }
        }
        let mut outcome = Outcome::default().with(
            "diff",
            dict([
                ("before", name_dict(&before)),
                ("after", name_dict(&self.name)),
            ]),
        );
        if !msg.is_empty() {
            outcome = outcome.with("msg", msg.join("\n"));
        }
        Ok(Check::new(changes, outcome))
    }

    fn apply(&self, check: Check) -> Result<Outcome, ModuleError> {
        let log: Vec<String> = check
            .outcome
            .data
            .get("msg")
            .and_then(|m| m.as_str().map(|s| s.lines().map(str::to_string).collect()))
            .unwrap_or_default();
        let mut systemd = None;
        for change in &check.changes {
            match change {
                Change::Exec { argv, .. } => {
                    if argv.get(1).map(String::as_str) == Some("set-timezone") {
                        systemd = Some(Strategy::Systemd(argv[0].clone()));
                    }
                    let ran = run_exec(change)?;
                    if !ran.ok() {
                        return Err(ModuleError::new(ran.failure()));
                    }
                }
                other => {
                    crate::fsops::apply(other)?;
                }
            }
        }
        let strategy = systemd.unwrap_or(Strategy::Debian);
        let after = self.current(&strategy, true, &log)?;
        if after != self.name {
            return Err(abort(
                &format!(
                    "still not desired state, though changes have made - planned: {{'name': '{}'}}, after: {{'name': '{after}'}}",
                    self.name
                ),
                &log,
            ));
        }
        Ok(check.outcome)
    }

    fn owns(&self) -> Vec<crate::resource::Owned> {
        vec![crate::resource::Owned::Path(self.files.localtime.clone())]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_timedatectl_status() {
        let out = "               Local time: Sun 2026-12-06 05:00:00 CET\n           Universal time: Sun 2026-12-06 04:00:00 UTC\n                Time zone: Europe/Paris (CET, +0100)\n";
        assert_eq!(zone_in_status(out).as_deref(), Some("Europe/Paris"));
        assert_eq!(
            zone_in_status("Timezone: UTC (UTC, +0000)").as_deref(),
            Some("UTC")
        );
    }

    #[test]
    fn edits_etc_timezone_as_timezone_py() {
        assert_eq!(edit_timezone_file("", "UTC"), ("UTC\n".into(), 0));
        assert_eq!(
            edit_timezone_file("\nEtc/UTC\nfoo\n", "Europe/Paris"),
            ("\nEurope/Paris\n".into(), 2)
        );
        assert_eq!(
            zone_in_link("../usr/share/zoneinfo/Europe/Paris").as_deref(),
            Some("Europe/Paris")
        );
        assert_eq!(zone_in_link("/tmp/x"), None);
    }

    #[test]
    fn debian_strategy_plans_file_link_and_reconfigure() {
        let d = tempfile::tempdir().unwrap();
        let zi = d.path().join("usr/share/zoneinfo");
        std::fs::create_dir_all(zi.join("Europe")).unwrap();
        std::fs::write(zi.join("Europe/Paris"), "TZif-paris").unwrap();
        std::fs::write(zi.join("UTC"), "TZif-utc").unwrap();
        std::fs::write(d.path().join("timezone"), "Etc/UTC\n").unwrap();
        std::os::unix::fs::symlink(zi.join("UTC"), d.path().join("localtime")).unwrap();
        let r = |name: &str| TimezoneResource {
            name: name.into(),
            files: Files {
                timezone: d.path().join("timezone"),
                localtime: d.path().join("localtime"),
                zoneinfo: zi.clone(),
            },
            strategy: Some(Strategy::Debian),
        };
        let c = r("Europe/Paris").check().unwrap();
        let what: Vec<String> = c.changes.iter().map(|c| c.describe()).collect();
        assert_eq!(what.len(), 3, "{what:?}");
        assert!(what[2].contains("dpkg-reconfigure"));
        assert_eq!(
            c.outcome.data["msg"].as_str(),
            Some(
                format!(
                    "Added 1 line and deleted 1 line(s) on {}",
                    d.path().join("timezone").display()
                )
                .as_str()
            )
        );
        // /etc/timezone says Europe/Paris but the link says UTC: the link wins.
        std::fs::write(d.path().join("timezone"), "Europe/Paris\n").unwrap();
        let c = r("Europe/Paris").check().unwrap();
        assert_eq!(c.changes.len(), 3);
        assert_eq!(
            c.outcome.data["diff"]
                .get_attr("before")
                .unwrap()
                .get_attr("name")
                .unwrap()
                .as_str(),
            Some("UTC")
        );
        assert!(r("Etc/Nowhere")
            .check()
            .unwrap_err()
            .0
            .contains("given timezone \"Etc/Nowhere\" is not available"));
        // Both agree: nothing to do.
        std::fs::write(d.path().join("timezone"), "UTC\n").unwrap();
        assert!(r("UTC").check().unwrap().changes.is_empty());
    }
}
