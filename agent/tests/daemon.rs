//! The daemon (`gitops-agent run`) as a real process against a real repository over file://:
//! polling, signals, sd_notify on a socket the test opens, offline enforcement, the lock shared
//! with a one-shot converge, suspend/resume across a restart.
//!
//! Every process started here is killed by its guard's Drop, also when an assertion fails.
//! Intervals are short (1s, splay 0) or long (1h) with SIGUSR1 to poll, so the suite is quick.

use std::os::unix::net::UnixDatagram;
use std::process::Command;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

#[path = "common/daemon.rs"]
mod harness;
use harness::*;

/// One file written from `msg` (default `v`).
fn play(content: &str) -> String {
    format!(
        "- hosts: all\n  gather_facts: false\n  tasks:\n    - name: app config\n      copy:\n        dest: \"{{{{ root }}}}/app.conf\"\n        content: \"{content}\\n\"\n"
    )
}

/// Two files with a slow command between them.
fn slow_play(content: &str) -> String {
    format!(
        "- hosts: all\n  gather_facts: false\n  tasks:\n    - copy: {{dest: \"{{{{ root }}}}/a.conf\", content: \"{content}\\n\"}}\n    - command: sleep 2\n    - copy: {{dest: \"{{{{ root }}}}/b.conf\", content: \"{content}\\n\"}}\n"
    )
}

#[test]
fn a_new_commit_is_applied_within_interval_and_systemd_is_notified() {
    let f = Fleet::new();
    f.write_config("interval: 1s\nsplay: 0\n");
    f.commit(&play("v1"));
    let socket_path = f.tmp.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut agent = f.daemon(&[
        ("NOTIFY_SOCKET", socket_path.to_str().unwrap()),
        ("WATCHDOG_USEC", "1000000"),
    ]);
    assert!(
        wait_for(Duration::from_secs(10), || f.file("app.conf") == "v1\n"),
        "first converge: {}",
        agent.log()
    );
    // READY=1 after the first converge, a STATUS= line, watchdog pings every 0.5 s.
    let mut messages = Vec::new();
    let mut buf = [0u8; 4096];
    let end = Instant::now() + Duration::from_secs(5);
    while Instant::now() < end {
        if let Ok(n) = socket.recv(&mut buf) {
            messages.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        let joined = messages.join("\n");
        if joined.contains("READY=1")
            && joined.matches("WATCHDOG=1").count() >= 2
            && joined.contains("next poll")
        {
            break;
        }
    }
    let joined = messages.join("\n");
    assert!(joined.contains("READY=1"), "{joined}");
    assert!(joined.matches("WATCHDOG=1").count() >= 2, "{joined}");
    assert!(
        messages
            .iter()
            .any(|m| m.contains("STATUS=changed ") && m.contains(", next poll ")),
        "{joined}"
    );

    // A new commit lands by the next poll: interval + splay (1 s + 0) plus the converge itself
    // (waited for with a timeout; how long it takes is printed, not asserted).
    let c2 = f.commit(&play("v2"));
    let pushed = Instant::now();
    assert!(
        wait_for(Duration::from_secs(5), || f.file("app.conf") == "v2\n"),
        "{}",
        agent.log()
    );
    eprintln!("new commit applied after {:?}", pushed.elapsed());
    assert!(
        wait_for(Duration::from_secs(5), || f
            .status_in(&f.bare)
            .contains(&format!("commit_applied: {c2}"))),
        "{}",
        agent.log()
    );
    assert!(agent.alive());
    // Idle SIGTERM: exits 0 at once.
    agent.signal(Signal::SIGTERM);
    assert_eq!(
        agent.wait_exit(Duration::from_secs(5)),
        Some(0),
        "{}",
        agent.log()
    );
}

#[test]
fn sigusr1_polls_now() {
    let f = Fleet::new();
    let agent = daemon_at_v1(&f);
    f.commit(&play("v2"));
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(f.file("app.conf"), "v1\n", "polled without being asked");
    agent.signal(Signal::SIGUSR1);
    assert!(
        wait_for(Duration::from_secs(5), || f.file("app.conf") == "v2\n"),
        "{}",
        agent.log()
    );
    assert!(
        agent.log().contains("SIGUSR1: polling now"),
        "{}",
        agent.log()
    );
}

#[test]
fn sighup_keeps_the_old_config_when_the_new_one_is_broken() {
    let f = Fleet::new();
    let config = |msg: &str, interval: &str| {
        std::fs::write(
            &f.config,
            format!(
                "repo: file://{}\nstate_dir: {}\ninterval: {interval}\nsplay: 0\nextra_vars:\n  root: {}\n  msg: {msg}\n",
                f.bare.display(),
                f.state.display(),
                f.root.display()
            ),
        )
        .unwrap()
    };
    config("one", "1h");
    f.commit(&play("{{ msg }}"));
    let mut agent = f.daemon(&[]);
    assert!(
        wait_for(Duration::from_secs(10), || f.file("app.conf") == "one\n"),
        "{}",
        agent.log()
    );
    // A broken file: logged, the old configuration stays in use.
    std::fs::write(&f.config, "interval: [not a duration\n").unwrap();
    agent.signal(Signal::SIGHUP);
    assert!(
        wait_for(Duration::from_secs(5), || agent
            .log()
            .contains("not reloaded")),
        "{}",
        agent.log()
    );
    f.commit(&play("{{ msg }} again"));
    agent.signal(Signal::SIGUSR1);
    assert!(
        wait_for(Duration::from_secs(5), || f.file("app.conf")
            == "one again\n"),
        "the old config (extra var msg=one) was not used: {}",
        agent.log()
    );
    assert!(agent.alive());
    // A fixed file is picked up: a new extra var, and a 1 s interval (no SIGUSR1 needed).
    config("two", "1s");
    agent.signal(Signal::SIGHUP);
    assert!(
        wait_for(Duration::from_secs(5), || agent
            .log()
            .contains("reloaded (interval 1s")),
        "{}",
        agent.log()
    );
    f.commit(&play("{{ msg }}"));
    assert!(
        wait_for(Duration::from_secs(5), || f.file("app.conf") == "two\n"),
        "{}",
        agent.log()
    );
    agent.signal(Signal::SIGTERM);
    assert_eq!(agent.wait_exit(Duration::from_secs(5)), Some(0));
}

#[test]
fn sigterm_during_a_converge_lets_it_finish_and_exits_0() {
    let f = Fleet::new();
    f.write_config("interval: 1h\nsplay: 0\n");
    f.commit(&slow_play("old"));
    let mut agent = f.daemon(&[]);
    assert!(
        wait_for(Duration::from_secs(15), || f.file("b.conf") == "old\n"),
        "{}",
        agent.log()
    );
    f.commit(&slow_play("new"));
    agent.signal(Signal::SIGUSR1);
    // a.conf is new: the converge is inside `sleep 2`.
    assert!(
        wait_for(Duration::from_secs(5), || f.file("a.conf") == "new\n"),
        "{}",
        agent.log()
    );
    assert_eq!(f.file("b.conf"), "old\n");
    agent.signal(Signal::SIGTERM);
    // The converge in progress (inside `sleep 2`) ends, then the daemon exits.
    let code = agent.wait_exit(Duration::from_secs(5));
    assert_eq!(code, Some(0), "{}", agent.log());
    // The converge ran to its end; every file is whole (old or new), no temporary file left.
    assert_eq!(f.file("a.conf"), "new\n");
    assert_eq!(f.file("b.conf"), "new\n");
    let mut names: Vec<String> = std::fs::read_dir(&f.root)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["a.conf", "b.conf"]);
    assert!(
        agent
            .log()
            .contains("stopping once the converge in progress has finished"),
        "{}",
        agent.log()
    );
}

#[test]
fn offline_the_applied_commit_is_enforced_and_the_status_lands_when_the_server_is_back() {
    let f = Fleet::new();
    let status = f.tmp.path().join("status.git");
    git(
        f.tmp.path(),
        &["init", "-q", "--bare", status.to_str().unwrap()],
    );
    let metrics = f.tmp.path().join("gitops-agent.prom");
    f.write_config(&format!(
        "interval: 1s\nsplay: 0\nenforce: 1s\nstatus:\n  repo: file://{}\nmetrics_file: {}\n",
        status.display(),
        metrics.display()
    ));
    let c1 = f.commit(&play("v1"));
    let mut agent = f.daemon(&[]);
    assert!(
        wait_for(Duration::from_secs(10), || f.file("app.conf") == "v1\n"
            && f.status_in(&status).contains("result: changed")),
        "{}",
        agent.log()
    );
    // Both servers gone.
    let away = f.tmp.path().join("away");
    std::fs::create_dir_all(&away).unwrap();
    std::fs::rename(&f.bare, away.join("fleet.git")).unwrap();
    std::fs::rename(&status, away.join("status.git")).unwrap();
    assert!(
        wait_for(Duration::from_secs(5), || agent
            .log()
            .contains("fetch failed")),
        "{}",
        agent.log()
    );
    // Enforcement goes on from the local repository: a hand edit is put back.
    std::fs::write(f.root.join("app.conf"), "edited by hand\n").unwrap();
    assert!(
        wait_for(Duration::from_secs(10), || f.file("app.conf") == "v1\n"),
        "{}",
        agent.log()
    );
    assert!(
        wait_for(Duration::from_secs(5), || read(&metrics)
            .contains("gitops_agent_status_pending 1")),
        "{}",
        read(&metrics)
    );
    assert!(read(&metrics).contains("gitops_agent_last_fetch_success 0"));
    assert!(read(&metrics).contains(&format!(
        "gitops_agent_applied_commit_info{{commit=\"{c1}\"}} 1"
    )));
    assert!(agent.alive());
    // Back: the status kept during the outage lands.
    std::fs::rename(away.join("fleet.git"), &f.bare).unwrap();
    std::fs::rename(away.join("status.git"), &status).unwrap();
    let history = || {
        let out = Command::new("git")
            .args(["--git-dir", status.to_str().unwrap(), "log", "-p"])
            .arg(format!("status/{}", f.host))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(
        wait_for(Duration::from_secs(15), || history()
            .contains("fetch failed, enforced the applied commit")),
        "{}\n{}",
        history(),
        agent.log()
    );
    assert!(
        wait_for(Duration::from_secs(5), || read(&metrics)
            .contains("gitops_agent_status_pending 0")
            && read(&metrics).contains("gitops_agent_last_fetch_success 1")),
        "{}",
        read(&metrics)
    );
    // The worker writes the metrics; the daemon logs once it has the worker's answer.
    assert!(
        wait_for(Duration::from_secs(5), || agent
            .log()
            .contains("reachable again")),
        "{}",
        agent.log()
    );
}

#[test]
fn the_daemon_and_a_one_shot_converge_are_serialised_by_the_lock() {
    let f = Fleet::new();
    f.write_config("interval: 1h\nsplay: 0\n");
    f.commit(&slow_play("v1"));
    let agent = f.daemon(&[]);
    // The daemon's first converge is inside `sleep 2`.
    assert!(
        wait_for(Duration::from_secs(10), || f.file("a.conf") == "v1\n"),
        "{}",
        agent.log()
    );
    assert_eq!(f.file("b.conf"), "");
    // --no-wait: fails at once, naming the daemon.
    let out = f.cli(&["converge", "--no-wait"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    // The lock is held by the daemon's worker: its pid is named, and its parent is the daemon.
    let pid: u32 = err
        .split("another gitops-agent converge is running (pid ")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no pid named: {err}"));
    assert_eq!(parent_of(pid), Some(agent.child.id()), "{err}");
    // Without: waits, says so, and runs once the daemon's converge is over.
    let out = f.cli(&["converge"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("waiting for it to finish"), "{err}");
    assert_eq!(f.file("b.conf"), "v1\n", "ran before the daemon finished");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(err.contains("nothing new"), "{err}");
    drop(agent);

    // The other way round: a one-shot converge holds the lock, the daemon waits for it.
    f.commit(&slow_play("v2"));
    let config = f.config.to_str().unwrap().to_string();
    let oneshot = f.spawn("oneshot", &["converge", "--config", &config], &[]);
    assert!(
        wait_for(Duration::from_secs(10), || f.file("a.conf") == "v2\n"),
        "{}",
        oneshot.log()
    );
    let agent = f.daemon(&[]);
    assert!(
        wait_for(Duration::from_secs(5), || agent
            .log()
            .contains("waiting for it to finish")),
        "{}",
        agent.log()
    );
    assert!(
        wait_for(Duration::from_secs(10), || agent
            .log()
            .contains("poll: unchanged")),
        "{}",
        agent.log()
    );
    assert_eq!(f.file("b.conf"), "v2\n");
    drop(oneshot);
}

#[test]
fn suspend_holds_across_a_restart() {
    let f = Fleet::new();
    let metrics = f.tmp.path().join("gitops-agent.prom");
    f.write_config(&format!(
        "interval: 1s\nsplay: 0\nmetrics_file: {}\n",
        metrics.display()
    ));
    f.commit(&play("v1"));
    let mut agent = f.daemon(&[]);
    assert!(
        wait_for(Duration::from_secs(10), || f.file("app.conf") == "v1\n"),
        "{}",
        agent.log()
    );
    let out = f.cli(&["suspend", "--reason", "maintenance window"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let c2 = f.commit(&play("v2"));
    assert!(
        wait_for(Duration::from_secs(5), || {
            let s = f.status_in(&f.bare);
            s.contains("result: suspended")
                && s.contains("suspended: maintenance window")
                && s.contains(&format!("commit_seen: {c2}"))
        }),
        "{}\n{}",
        f.status_in(&f.bare),
        agent.log()
    );
    assert_eq!(f.file("app.conf"), "v1\n");
    assert!(read(&metrics).contains("gitops_agent_suspended 1"));

    // Restarted: still suspended.
    agent.signal(Signal::SIGTERM);
    assert_eq!(agent.wait_exit(Duration::from_secs(5)), Some(0));
    drop(agent);
    let agent = f.daemon(&[]);
    assert!(
        wait_for(Duration::from_secs(5), || agent
            .log()
            .contains("poll: suspended")),
        "{}",
        agent.log()
    );
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(f.file("app.conf"), "v1\n");
    let out = Command::new(BIN)
        .args(["status", "--state-dir"])
        .arg(&f.state)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("suspended:      maintenance window"),
        "{out:?}"
    );

    // Resumed: the next poll applies v2.
    let out = f.cli(&["resume"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(
        wait_for(Duration::from_secs(5), || f.file("app.conf") == "v2\n"),
        "{}",
        agent.log()
    );
    assert!(
        wait_for(Duration::from_secs(5), || read(&metrics)
            .contains("gitops_agent_suspended 0")),
        "{}",
        read(&metrics)
    );
}

mod common;

/// The same outage against a real server on 127.0.0.1: `git http-backend` behind the test CGI
/// server, stopped (nothing listens on its port) and started again on the same port.
#[test]
fn http_server_down_enforcement_goes_on_and_the_status_lands_when_it_is_back() {
    let f = Fleet::new();
    let mut remote = common::Remote::start(common::Transport::Http, f.tmp.path(), None, None);
    let status = f.tmp.path().join("status.git");
    git(
        f.tmp.path(),
        &["init", "-q", "--bare", status.to_str().unwrap()],
    );
    git(&status, &["config", "http.receivepack", "true"]);
    std::fs::write(
        &f.config,
        format!(
            "repo: {}\nstate_dir: {}\nextra_vars:\n  root: {}\ninterval: 1s\nsplay: 0\nenforce: 1s\nstatus:\n  repo: {}\n",
            remote.url("fleet.git"),
            f.state.display(),
            f.root.display(),
            remote.url("status.git"),
        ),
    )
    .unwrap();
    f.commit(&play("v1"));
    let mut agent = f.daemon(&[]);
    assert!(
        wait_for(Duration::from_secs(15), || f.file("app.conf") == "v1\n"
            && f.status_in(&status).contains("result: changed")),
        "{}",
        agent.log()
    );
    remote.stop();
    assert!(
        wait_for(Duration::from_secs(10), || agent
            .log()
            .contains("fetch failed")),
        "{}",
        agent.log()
    );
    std::fs::write(f.root.join("app.conf"), "edited by hand\n").unwrap();
    assert!(
        wait_for(Duration::from_secs(10), || f.file("app.conf") == "v1\n"),
        "{}",
        agent.log()
    );
    assert!(agent.alive());
    remote.start_again();
    let history = || {
        let out = Command::new("git")
            .args(["--git-dir", status.to_str().unwrap(), "log", "-p"])
            .arg(format!("status/{}", f.host))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(
        // The status written during the outage (the failed fetch) lands once the server is
        // back. (The hand edit itself may be put back by the drift watch or by `enforce`,
        // whichever comes first.)
        wait_for(Duration::from_secs(20), || history()
            .contains("Connection refused")),
        "{}\n{}",
        history(),
        agent.log()
    );
}

/// The parent of a process (from /proc/PID/stat), if it still runs.
fn parent_of(pid: u32) -> Option<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()?
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().nth(1))
        .and_then(|p| p.parse().ok())
}

/// The processes of this pid's children (read from /proc: works without CONFIG_PROC_CHILDREN).
fn children_of(pid: u32) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()))
        .filter(|&child| parent_of(child) == Some(pid))
        .collect()
}

/// A daemon polling every hour, once it has applied `play("v1")`.
fn daemon_at_v1(f: &Fleet) -> Guard {
    f.write_config("interval: 1h\nsplay: 0\n");
    f.commit(&play("v1"));
    let agent = f.daemon(&[]);
    assert!(
        wait_for(Duration::from_secs(10), || f.file("app.conf") == "v1\n"),
        "{}",
        agent.log()
    );
    agent
}

#[test]
fn the_idle_daemon_is_gitops_agentd_and_each_run_is_a_worker_that_exits() {
    let f = Fleet::new();
    let agent = daemon_at_v1(&f);
    // `run` has become gitops-agentd (same pid: systemd's main process stays the same).
    let pid = agent.child.id();
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap();
    assert_eq!(
        exe.file_name().and_then(|n| n.to_str()),
        Some("gitops-agentd"),
        "{exe:?}"
    );
    // The run was a worker process, gone once it answered; its peak memory is logged.
    assert!(
        wait_for(Duration::from_secs(5), || children_of(pid).is_empty()),
        "workers still running: {:?}",
        children_of(pid)
    );
    assert!(
        wait_for(Duration::from_secs(5), || agent
            .log()
            .contains("worker_peak_kib=")),
        "{}",
        agent.log()
    );
    // The next poll (SIGUSR1) is another worker: v2 applied, and again no child left.
    f.commit(&play("v2"));
    agent.signal(Signal::SIGUSR1);
    assert!(
        wait_for(Duration::from_secs(10), || f.file("app.conf") == "v2\n"),
        "{}",
        agent.log()
    );
    assert!(
        wait_for(Duration::from_secs(5), || children_of(pid).is_empty()),
        "workers still running: {:?}",
        children_of(pid)
    );
    assert_eq!(
        agent.log().matches("poll: changed").count(),
        2,
        "{}",
        agent.log()
    );
}

#[test]
fn without_gitops_agentd_run_says_what_is_missing() {
    if std::path::Path::new("/usr/libexec/gitops-agent/gitops-agentd").exists() {
        eprintln!("skipped: a gitops-agentd is installed on this machine");
        return;
    }
    let f = Fleet::new();
    f.write_config("interval: 1h\n");
    // The agent alone in a directory, as if the package's second binary were missing.
    let lone = f.tmp.path().join("bin/gitops-agent");
    std::fs::create_dir_all(lone.parent().unwrap()).unwrap();
    std::fs::copy(env!("CARGO_BIN_EXE_gitops-agent"), &lone).unwrap();
    let out = Command::new(&lone)
        .args(["run", "--config"])
        .arg(&f.config)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("gitops-agentd not found next to")
            && err.contains("/usr/libexec/gitops-agent"),
        "{err}"
    );
}

#[test]
fn an_invalid_configuration_at_start_exits_3_naming_the_line() {
    let f = Fleet::new();
    f.write_config("interval: 1h\nintervall: 5m\n");
    let mut agent = f.daemon(&[]);
    assert_eq!(
        agent.wait_exit(Duration::from_secs(10)),
        Some(3),
        "{}",
        agent.log()
    );
    let log = agent.log();
    assert!(
        log.contains("key `intervall`") && log.contains("config.yml:6"),
        "{log}"
    );
}

/// A fetch that fails because the host's branch is missing waits for the interval (trying
/// sooner cannot help: someone has to push it); one that fails because the server is gone is
/// retried sooner, with backoff (`GitError::is_spurious`).
#[test]
fn a_failed_fetch_is_retried_sooner_only_when_that_may_help() {
    let f = Fleet::new();
    // Nothing pushed: the repository has no branch for this host.
    f.write_config("interval: 1h\nsplay: 0\n");
    let mut agent = f.daemon(&[]);
    let failed = |n: u32| format!("fetch failed {n} time(s) in a row");
    assert!(
        wait_for(Duration::from_secs(10), || agent.log().contains(&failed(1))),
        "{}",
        agent.log()
    );
    let log = agent.log();
    assert!(
        log.contains("next try in 3600.0s (at the interval: trying sooner would not help)"),
        "{log}"
    );
    // The server gone: sooner, within the first backoff step (5 s, jittered).
    std::fs::rename(&f.bare, f.tmp.path().join("gone.git")).unwrap();
    agent.signal(Signal::SIGUSR1);
    assert!(
        wait_for(Duration::from_secs(10), || agent.log().contains(&failed(2))),
        "{}",
        agent.log()
    );
    let log = agent.log();
    let line = log.lines().find(|l| l.contains(&failed(2))).unwrap();
    assert!(!line.contains("at the interval"), "{line}");
    assert!(
        wait_for(Duration::from_secs(10), || agent.log().contains(&failed(3))),
        "{}",
        agent.log()
    );
    assert!(agent.alive());
}
