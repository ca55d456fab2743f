"""apt and systemd modules inside a booted bookworm container (systemd as PID 1, own netns),
against a real local APT repository of tiny test packages (tests/lib/pkgrepo.py).

Every scenario boots its own throwaway container (volatile overlay): nothing touches the host's
dpkg database or PID 1. Idempotence is shown by converging twice.
"""
from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from container import Container

REPO_AT = "/srv/gatest-repo"
DEBS_AT = "/srv/gatest-debs"
PB_AT = "/srv/pb"


def write_playbook(d: Path, tasks: str, handlers: str = "", files: dict[str, str] | None = None) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    text = "- hosts: all\n  gather_facts: false\n  tasks:\n" + textwrap.indent(textwrap.dedent(tasks), "    ")
    if handlers:
        text += "  handlers:\n" + textwrap.indent(textwrap.dedent(handlers), "    ")
    (d / "local.yml").write_text(text)
    for rel, content in (files or {}).items():
        p = d / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(content)
    return d


@pytest.fixture
def box(rootfs, apt_repo, agent_binary, tmp_path):
    """A booted container with the agent, the APT repo (sources list written, lists not yet
    updated) and tmp_path/pb bound at /srv/pb."""
    pb = tmp_path / "pb"
    pb.mkdir()
    binds = [(apt_repo.path, REPO_AT), (apt_repo.solo_deb.parent, DEBS_AT), (pb, PB_AT)]
    with Container(rootfs, binds, agent=agent_binary) as c:
        c.add_apt_repo(apt_repo, REPO_AT, update=False)
        stale_lists(c)
        c.pb = pb
        yield c


def stale_lists(c: Container):
    """Make the package lists look old, so `cache_valid_time` decides the same on every run
    whatever the age of the cached root filesystem."""
    c.run("rm -f /var/lib/apt/periodic/update-success-stamp; touch -d 2000-01-01 /var/lib/apt/lists")


def changed(run) -> list[tuple[str, bool]]:
    return [(t["name"], t["changed"]) for t in run.tasks]


def dpkg_state(c: Container) -> dict[str, tuple[str, str]]:
    """gatest-* packages: name -> (dpkg status abbrev, version)."""
    out = c.run(["dpkg-query", "-W", "-f=${Package} ${db:Status-Abbrev} ${Version}\n", "gatest-*"],
                check=False).stdout
    state = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3:
            state[parts[0]] = (parts[1], parts[2])
    return {k: v for k, v in state.items() if v[0] != "un"}


def test_install_idempotent_pin_local_deb_and_service(box):
    c = box
    write_playbook(c.pb, f"""\
        - name: app with its dependency, cache updated first
          apt: {{name: gatest-app, update_cache: true, cache_valid_time: 3600}}
        - name: hello pinned to 1.0
          apt: name=gatest-hello=1.0
        - name: solo from a local deb
          apt: deb={DEBS_AT}/gatest-solo_1.0_all.deb
        - name: hello running and enabled
          systemd: name=gatest-hello state=started enabled=yes
        """)
    r1 = c.converge(PB_AT)
    assert r1.rc == 2, r1.stdout + r1.stderr
    assert changed(r1) == [("app with its dependency, cache updated first", True),
                           ("hello pinned to 1.0", True), ("solo from a local deb", True),
                           ("hello running and enabled", True)]
    st = dpkg_state(c)
    assert st == {"gatest-app": ("ii", "1.0"), "gatest-lib": ("ii", "1.0"),
                  "gatest-hello": ("ii", "1.0"), "gatest-solo": ("ii", "1.0")}, st
    assert c.is_active("gatest-hello") == "active"
    assert c.systemctl("is-enabled", "gatest-hello", check=False).stdout.strip() == "enabled"

    r2 = c.converge(PB_AT)
    assert r2.rc == 0, r2.stdout + r2.stderr
    assert [ch for _, ch in changed(r2)] == [False] * 4, r2.stdout


def test_latest_handler_restart_remove_purge(box):
    c = box
    c.run("apt-get update -q")
    write_playbook(c.pb, """\
        - name: hello 1.0
          apt: name=gatest-hello=1.0
        - name: hello running
          service: name=gatest-hello state=started
        """)
    assert c.converge(PB_AT).rc == 2
    pid1 = c.systemctl("show", "-p", "MainPID", "--value", "gatest-hello").stdout.strip()

    write_playbook(c.pb, """\
        - name: hello latest
          apt: name=gatest-hello state=latest
          notify: restart hello
        - name: drop-in directory
          file: path=/etc/systemd/system/gatest-hello.service.d state=directory
        - name: hello drop-in
          copy:
            dest: /etc/systemd/system/gatest-hello.service.d/env.conf
            content: "[Service]\\nEnvironment=GREETING=hi\\n"
          notify: [reload systemd, restart hello]
        """, handlers="""\
        - name: reload systemd
          systemd: daemon_reload=yes
        - name: restart hello
          service: name=gatest-hello state=restarted
        """)
    r = c.converge(PB_AT)
    assert r.rc == 2, r.stdout + r.stderr
    assert dpkg_state(c)["gatest-hello"] == ("ii", "2.0")
    names = [(t["name"], t["changed"]) for t in r.tasks]
    # The handler ran once although two tasks notified it.
    assert names.count(("restart hello", True)) == 1, names
    pid2 = c.systemctl("show", "-p", "MainPID", "--value", "gatest-hello").stdout.strip()
    assert pid2 not in ("0", pid1), (pid1, pid2)
    env = c.systemctl("show", "-p", "Environment", "--value", "gatest-hello").stdout
    assert "GREETING=hi" in env

    r = c.converge(PB_AT)
    assert r.rc == 0 and not any(ch for _, ch in changed(r)), r.stdout
    assert c.systemctl("show", "-p", "MainPID", "--value", "gatest-hello").stdout.strip() == pid2

    write_playbook(c.pb, """\
        - name: hello stopped and disabled
          systemd: name=gatest-hello state=stopped enabled=no
        - name: hello removed
          apt: name=gatest-hello state=absent
        - name: removing again is a no-op (config files left)
          apt: name=gatest-hello state=absent
        - name: purge its config files
          apt: name=gatest-hello state=absent purge=yes
        """)
    r = c.converge(PB_AT)
    assert changed(r) == [("hello stopped and disabled", True), ("hello removed", True),
                          ("removing again is a no-op (config files left)", False),
                          ("purge its config files", True)], r.stdout
    assert "gatest-hello" not in dpkg_state(c)
    assert not c.exists("/etc/gatest-hello.conf")


def test_missing_package_fails_and_changes_nothing(box):
    c = box
    c.run("apt-get update -q")
    write_playbook(c.pb, """\
        - name: lib and a package no source has
          apt:
            name: [gatest-lib, gatest-nope]
        - name: never reached
          apt: name=gatest-app
        """)
    r = c.converge(PB_AT)
    assert r.rc == 1, r.stdout + r.stderr
    tasks = {t["name"]: t for t in r.raw["tasks"]}
    assert tasks["lib and a package no source has"]["status"] == "failed"
    assert "No package matching 'gatest-nope' is available" in tasks["lib and a package no source has"]["msg"]
    assert tasks["never reached"]["status"] == "not-run"
    assert dpkg_state(c) == {}


def test_broken_postinst_fails_the_task_and_stops_the_play(box):
    c = box
    c.run("apt-get update -q")
    write_playbook(c.pb, """\
        - name: broken package
          apt: name=gatest-broken
        - name: never reached
          apt: name=gatest-lib
        """)
    r = c.converge(PB_AT)
    assert r.rc == 1, r.stdout + r.stderr
    tasks = {t["name"]: t for t in r.raw["tasks"]}
    assert tasks["broken package"]["status"] == "failed"
    assert "apt-get" in tasks["broken package"]["msg"] and "failed" in tasks["broken package"]["msg"]
    assert tasks["never reached"]["status"] == "not-run"
    assert "gatest-lib" not in dpkg_state(c)
    # Half-configured is not installed: the next run tries again (and fails again).
    assert dpkg_state(c)["gatest-broken"][0] in ("iF", "iU")
    r = c.converge(PB_AT)
    assert r.rc == 1 and {t["name"]: t["status"] for t in r.raw["tasks"]}["broken package"] == "failed"


def test_check_mode_installs_nothing(box):
    c = box
    c.run("apt-get update -q")
    write_playbook(c.pb, """\
        - name: app
          apt: name=gatest-app
        - name: upgrade nothing yet
          apt: name=gatest-hello state=latest
        """)
    r = c.converge(PB_AT, check=True)
    assert changed(r) == [("app", True), ("upgrade nothing yet", True)], r.stdout
    assert dpkg_state(c) == {}


def test_unknown_unit_is_a_clear_error(box):
    c = box
    write_playbook(c.pb, """\
        - name: no such unit
          service: name=gatest-nope state=started
        """)
    r = c.converge(PB_AT)
    assert r.rc == 1
    t = r.raw["tasks"][0]
    assert t["status"] == "failed"
    assert "Could not find the requested service gatest-nope" in t["msg"], t


@pytest.mark.parametrize("tool", ["ansible", "agent"])
def test_same_as_ansible(rootfs, apt_repo, agent_binary, tmp_path, tool):
    """The same apt/systemd playbook through ansible-playbook (ansible-core 2.19, its apt module
    on python3-apt) and through the agent, each in a fresh container: both must give the
    package/unit end state and the per-task `changed` of run 1 and run 2 written here, which
    are what ansible-core does."""
    # "cache": the lists were just updated, so apt-get update leaves their timestamp alone and
    # ansible-core reports no change although the cache looked stale.
    pb = write_playbook(tmp_path / "pb", """\
        - name: cache
          apt: update_cache=yes cache_valid_time=3600
        - name: lib (already there)
          apt:
            name: [gatest-lib]
        - name: hello latest
          apt: name=gatest-hello state=latest
        - name: app removed, lib stays
          apt: name=gatest-app state=absent
        - name: hello enabled and started
          systemd: name=gatest-hello enabled=yes state=started
        - name: hello started (service)
          service: name=gatest-hello state=started
        - name: a pin below the installed version is a failed downgrade
          apt: name=gatest-hello=1.0
          ignore_errors: true
        """)
    binds = [(apt_repo.path, REPO_AT), (pb, PB_AT)]
    with Container(rootfs, binds, agent=agent_binary, ansible=(tool == "ansible")) as c:
        c.add_apt_repo(apt_repo, REPO_AT, update=True)
        c.run("apt-get install -y -q gatest-app")
        stale_lists(c)
        runs = []
        for _ in range(2):
            r = c.ansible_playbook(PB_AT, playbook="local.yml") if tool == "ansible" else c.converge(PB_AT)
            assert r.tasks, r.stdout + r.stderr
            runs.append(changed(r))
            statuses = [t["status"] for t in r.tasks]
            assert statuses[-1] in ("failed", "ignored") and statuses.count("failed") <= 1, (tool, statuses)
        state = (dpkg_state(c), c.is_active("gatest-hello"),
                 c.systemctl("is-enabled", "gatest-hello", check=False).stdout.strip())
    expected = [("cache", False), ("lib (already there)", False), ("hello latest", True),
                ("app removed, lib stays", True), ("hello enabled and started", True),
                ("hello started (service)", False),
                ("a pin below the installed version is a failed downgrade", False)]
    assert runs[0] == expected, (tool, runs[0])
    assert runs[1] == [(n, False) for n, _ in expected], (tool, runs[1])
    assert state == ({"gatest-hello": ("ii", "2.0"), "gatest-lib": ("ii", "1.0")}, "active", "enabled"), (tool, state)


def test_apt_repository_package_module_and_deb_from_the_repository(rootfs, apt_repo, agent_binary, tmp_path):
    """apt_repository adds the source (and updates the cache), `package` picks apt, `deb` takes
    a .deb from the playbook's files/; a second run changes nothing; absent removes the file."""
    pb = write_playbook(tmp_path / "pb", f"""\
        - name: test repository
          apt_repository:
            repo: deb [trusted=yes] file:{REPO_AT} ./
            filename: gatest
        - name: app through package
          package: name=gatest-app state=present
        - name: solo from files/
          apt: deb=gatest-solo_1.0_all.deb
        """)
    (pb / "files").mkdir()
    (pb / "files" / "gatest-solo_1.0_all.deb").write_bytes(apt_repo.solo_deb.read_bytes())
    with Container(rootfs, [(apt_repo.path, REPO_AT), (pb, PB_AT)], agent=agent_binary) as c:
        r1 = c.converge(PB_AT)
        assert changed(r1) == [("test repository", True), ("app through package", True),
                               ("solo from files/", True)], r1.stdout + r1.stderr
        assert c.read_file("/etc/apt/sources.list.d/gatest.list") == f"deb [trusted=yes] file:{REPO_AT} ./\n"
        st = dpkg_state(c)
        assert st["gatest-app"][0] == "ii" and st["gatest-solo"][0] == "ii", st
        r2 = c.converge(PB_AT)
        assert r2.rc == 0 and not any(ch for _, ch in changed(r2)), r2.stdout

        write_playbook(pb, f"""\
            - name: repository removed
              apt_repository:
                repo: deb [trusted=yes] file:{REPO_AT} ./
                state: absent
                update_cache: false
            """)
        r3 = c.converge(PB_AT)
        assert changed(r3) == [("repository removed", True)], r3.stdout
        assert not c.exists("/etc/apt/sources.list.d/gatest.list")
        assert changed(c.converge(PB_AT)) == [("repository removed", False)]


def test_waits_for_the_dpkg_lock(box):
    """Another apt holds the dpkg frontend lock for a few seconds: the task waits and succeeds
    instead of failing at once (apt-get's DPkg::Lock::Timeout, the module's lock_timeout)."""
    c = box
    c.run("apt-get update -q")
    write_playbook(c.pb, """\
        - name: lib while the lock is held
          apt: name=gatest-lib lock_timeout=60
        """)
    # POSIX record lock as apt/dpkg take it (fcntl), held for 4 s by a background process.
    c.run(["systemd-run", "--unit=gatest-holdlock", "--collect", "python3", "-c",
           "import fcntl,time\nf=open('/var/lib/dpkg/lock-frontend','w')\n"
           "fcntl.lockf(f,fcntl.LOCK_EX)\nopen('/run/gatest-locked','w').close()\ntime.sleep(4)\n"])
    c.run("for i in $(seq 100); do [ -e /run/gatest-locked ] && exit 0; sleep 0.05; done; exit 1")
    r = c.converge(PB_AT)
    assert r.rc == 2, r.stdout + r.stderr
    assert changed(r) == [("lib while the lock is held", True)]
    assert r.seconds > 2, r.seconds
    assert dpkg_state(c)["gatest-lib"][0] == "ii"


def test_policy_rc_d_and_autoclean(box):
    """`policy_rc_d: 101` is /usr/sbin/policy-rc.d while apt-get runs (seen by a dpkg hook) and the
    host's own policy-rc.d is put back; `autoclean` deletes an obsolete .deb once (then nothing)."""
    c = box
    c.write_file("/usr/sbin/policy-rc.d", "#!/bin/sh\n# the host's own\nexit 0\n", mode=0o755)
    c.write_file("/etc/apt/apt.conf.d/99gatest-seen",
                 'DPkg::Pre-Invoke { "cat /usr/sbin/policy-rc.d > /root/seen-policy"; };\n')
    c.run("mkdir -p /var/cache/apt/archives && echo junk > /var/cache/apt/archives/gatest-gone_0.1_all.deb")
    write_playbook(c.pb, """\
        - name: lib installed with services kept down
          apt: {name: gatest-lib, update_cache: true, policy_rc_d: 101}
        - name: obsolete downloads cleaned
          apt: {autoclean: true}
        """)
    r1 = c.converge(PB_AT)
    assert changed(r1) == [("lib installed with services kept down", True),
                           ("obsolete downloads cleaned", True)], r1.stdout + r1.stderr
    assert "exit 101" in c.read_file("/root/seen-policy")
    assert c.read_file("/usr/sbin/policy-rc.d") == "#!/bin/sh\n# the host's own\nexit 0\n"
    assert "gatest-lib" in dpkg_state(c)
    assert not c.exists("/var/cache/apt/archives/gatest-gone_0.1_all.deb")
    stale_lists(c)
    r2 = c.converge(PB_AT)
    # the cache is updated again (stale lists), nothing else changes
    assert changed(r2)[1] == ("obsolete downloads cleaned", False), r2.stdout
