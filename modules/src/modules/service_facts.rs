//! `service_facts` (ansible.builtin): the host's services as the fact `services`, read as
//! ansible-core 2.19's module reads them on Linux: SysV scripts through `service --status-all`
//! (source `sysv`), then, when systemd manages the host, `systemctl list-units` and
//! `list-unit-files` (source `systemd`). Hosts with upstart (`initctl`), chkconfig or OpenRC
//! (`rc-status`) are refused. Changes nothing.

use std::path::Path;
use std::process::Command;

use indexmap::IndexMap;
use minijinja::Value;

use super::query::query;
use super::stat::bin_path;
use crate::args::{ArgSpec, Args};
use crate::process::Ran;
use crate::resource::{Module, ModuleContext, ModuleError, Outcome, Resource};

pub struct ServiceFactsModule;

static SPEC: ArgSpec = ArgSpec {
    module: "service_facts",
    args: &[],
    free_form: false,
    mutually_exclusive: &[],
    required_one_of: &[],
};

/// Unit states that make Ansible keep them as the service's `status`.
const BAD_STATES: &[&str] = &["not-found", "masked", "failed"];

type Services = IndexMap<String, IndexMap<&'static str, Value>>;

impl Module for ServiceFactsModule {
    fn spec(&self) -> &'static ArgSpec {
        &SPEC
    }
    fn prepare(
        &self,
        _args: &Args,
        _ctx: &ModuleContext,
    ) -> Result<Box<dyn Resource>, ModuleError> {
        query(service_facts)
    }
}

fn run(program: &Path, args: &[&str]) -> Result<Ran, ModuleError> {
    crate::process::run(
        Command::new(program)
            .args(args)
            .env("LANG", "C")
            .env("LC_ALL", "C"),
    )
}

fn service_facts() -> Result<Outcome, ModuleError> {
    for (tool, what) in [
        ("initctl", "upstart"),
        ("chkconfig", "chkconfig"),
        ("rc-status", "OpenRC"),
    ] {
        if bin_path(tool).is_some() {
            return Err(ModuleError::new(format!(
                "service_facts: {what} services (found `{tool}`) are not supported by the agent \
                 (SysV scripts and systemd are)"
            )));
        }
    }
    let mut services: Services = IndexMap::new();
    if let Some(service) = bin_path("service") {
        let ran = run(&service, &["--status-all"])?;
        // rc 4 without /etc/init.d: no SysV scripts at all.
        if ran.rc != 4 || Path::new("/etc/init.d").exists() {
            sysv_services(&ran.stdout, &mut services);
        }
    }
    if let Some(systemctl) = systemd_managed() {
        let units = run(
            &systemctl,
            &[
                "list-units",
                "--no-pager",
                "--type",
                "service",
                "--all",
                "--plain",
            ],
        )?;
        if units.ok() {
            units_services(&units.stdout, &mut services);
        }
        let files = run(
            &systemctl,
            &[
                "list-unit-files",
                "--no-pager",
                "--type",
                "service",
                "--all",
            ],
        )?;
        if files.ok() {
            unit_file_services(&files.stdout, &mut services, |name| {
                match run(&systemctl, &["show", name, "--property=ActiveState"]) {
                    Ok(r) if r.ok() && !r.stdout.is_empty() => {
                        r.stdout.replace("ActiveState=", "").trim_end().to_string()
                    }
                    _ => "unknown".to_string(),
                }
            })?;
        }
    }
    if services.is_empty() {
        return Ok(Outcome::default().with("skipped", true).with(
            "msg",
            "Failed to find any services. This can be due to privileges or some other \
             configuration issue.",
        ));
    }
    let services = crate::vars::map_value(
        services
            .into_iter()
            .map(|(k, v)| (k, crate::vars::map_value(v))),
    );
    Ok(Outcome::default().with(
        "ansible_facts",
        crate::vars::map_value([("services", services)]),
    ))
}

/// `is_systemd_managed`: systemctl, and a systemd canary or PID 1 named `systemd`.
fn systemd_managed() -> Option<std::path::PathBuf> {
    let systemctl = bin_path("systemctl")?;
    let canary = [
        "/run/systemd/system/",
        "/dev/.run/systemd/",
        "/dev/.systemd/",
    ]
    .iter()
    .any(|p| Path::new(p).exists());
    let pid1 = std::fs::read_to_string("/proc/1/comm")
        .is_ok_and(|c| c.lines().next().unwrap_or("").trim() == "systemd");
    (canary || pid1).then_some(systemctl)
}

fn entry(
    name: &str,
    state: &str,
    status: Option<&str>,
    source: &'static str,
) -> IndexMap<&'static str, Value> {
    let mut e = IndexMap::new();
    e.insert("name", Value::from(name));
    e.insert("state", Value::from(state));
    if let Some(s) = status {
        e.insert("status", Value::from(s));
    }
    e.insert("source", Value::from(source));
    e
}

/// `service --status-all` lines ` [ + ]  name` / ` [ - ]  name` (`[ ? ]` is not listed).
fn sysv_services(out: &str, services: &mut Services) {
    for line in out.lines() {
        let t = line.trim_start();
        let (state, rest) = if let Some(r) = t.strip_prefix("[ + ]") {
            ("running", r)
        } else if let Some(r) = t.strip_prefix("[ - ]") {
            ("stopped", r)
        } else {
            continue;
        };
        // `\s+(?P<name>.+)$`: at least one blank, then the rest of the line.
        if !rest.starts_with(char::is_whitespace) {
            continue;
        }
        let name = rest.trim_start();
        if name.is_empty() {
            continue;
        }
        services.insert(name.to_string(), entry(name, state, None, "sysv"));
    }
}

/// `systemctl list-units --plain` lines naming a `.service`.
fn units_services(out: &str, services: &mut Services) {
    for line in out.split('\n').filter(|l| l.contains(".service")) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < 4 {
            continue;
        }
        let head = &fields[..fields.len() - 1];
        let status = BAD_STATES
            .iter()
            .find(|b| head.contains(b))
            .copied()
            .unwrap_or(fields[2]);
        let state = if fields[3] == "running" {
            "running"
        } else {
            "stopped"
        };
        services.insert(
            fields[0].to_string(),
            entry(fields[0], state, Some(status), "systemd"),
        );
    }
}

/// `systemctl list-unit-files` lines naming a `.service`: new units get their state from
/// `active_state` (`systemctl show`), known ones their file's status unless it is bad.
fn unit_file_services(
    out: &str,
    services: &mut Services,
    active_state: impl Fn(&str) -> String,
) -> Result<(), ModuleError> {
    for line in out.split('\n').filter(|l| l.contains(".service")) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [name, status, ..] = fields[..] else {
            return Err(ModuleError::new(format!(
                "Malformed output discovered from systemd list-unit-files: {line}"
            )));
        };
        match services.get_mut(name) {
            None => {
                let state = active_state(name);
                services.insert(
                    name.to_string(),
                    entry(name, &state, Some(status), "systemd"),
                );
            }
            Some(known) => {
                let bad = known
                    .get("status")
                    .and_then(|s| s.as_str())
                    .is_some_and(|s| BAD_STATES.contains(&s));
                if !bad {
                    known.insert("status", Value::from(status));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn show(s: &Services) -> Vec<String> {
        s.values()
            .map(|e| crate::vars::map_value(e.clone()).to_string())
            .collect()
    }

    #[test]
    fn sysv_listing() {
        let mut s = Services::new();
        sysv_services(" [ - ]  dbus\n [ ? ]  hwclock.sh\n [ + ]  ssh\n", &mut s);
        assert_eq!(
            show(&s),
            vec![
                "{'name': 'dbus', 'state': 'stopped', 'source': 'sysv'}",
                "{'name': 'ssh', 'state': 'running', 'source': 'sysv'}"
            ]
        );
    }

    #[test]
    fn systemd_listings() {
        let mut s = Services::new();
        units_services(
            "ssh.service      loaded    active   running OpenBSD Secure Shell server\n\
             gone.service     not-found inactive dead    gone.service\n\
             cron.service     loaded    failed   failed  Regular background program\n\
             \n3 loaded units listed.\n",
            &mut s,
        );
        unit_file_services(
            "UNIT FILE       STATE   VENDOR PRESET\nssh.service     enabled enabled\n\
             cron.service    enabled enabled\nnew.service     disabled enabled\n\n3 unit files listed.\n",
            &mut s,
            |n| {
                assert_eq!(n, "new.service");
                "inactive".into()
            },
        )
        .unwrap();
        assert_eq!(
            show(&s),
            vec![
                "{'name': 'ssh.service', 'state': 'running', 'status': 'enabled', 'source': 'systemd'}",
                "{'name': 'gone.service', 'state': 'stopped', 'status': 'not-found', 'source': 'systemd'}",
                "{'name': 'cron.service', 'state': 'stopped', 'status': 'failed', 'source': 'systemd'}",
                "{'name': 'new.service', 'state': 'inactive', 'status': 'disabled', 'source': 'systemd'}"
            ]
        );
    }
}
