"""`service`/`systemd` where systemd is not running: the bookworm tree run with systemd-nspawn
WITHOUT --boot (a shell is PID 1, no /run/systemd/system: what a chroot, an image build or a
container build looks like), in a volatile overlay and a private network namespace.

Kept from Ansible: enabled/disabled and masked work offline through the unit files' symlinks
(systemctl writes them without a manager); the `service`
module starts/stops through /etc/init.d/<name> when there is one (its `status` decides); without
one, `started` is refused with a message naming the service and `stopped` holds; the `systemd`
module fails a daemon-reload and a state change outside a chroot ("Service is in unknown state"),
and only warns with SYSTEMD_OFFLINE=1 (the task's environment).
"""
from __future__ import annotations

import json
import os
import secrets
import subprocess
import textwrap
from pathlib import Path

import pytest

import container as ct

PLAYBOOK = """\
- hosts: all
  gather_facts: false
  tasks:
    - name: daemon-reload alone fails outside a chroot, as Ansible's
      systemd:
        daemon_reload: true
      register: reload_failed
      ignore_errors: true
    - name: daemon-reload alone, SYSTEMD_OFFLINE=1
      systemd:
        daemon_reload: true
      environment:
        SYSTEMD_OFFLINE: "1"
      register: reload
    - name: enable a unit with an init script
      service: {name: gatest-offline, enabled: true}
    - name: enable a unit without one
      systemd: {name: gatest-unitonly, enabled: true}
    - name: mask a unit
      systemd: {name: gatest-masked, masked: true}
    - name: start through the init script
      service: {name: gatest-offline, state: started}
    - name: stopped holds without an init script
      service: {name: gatest-unitonly, state: stopped}
    - name: started is refused without an init script
      service: {name: gatest-unitonly, state: started}
      register: refused
      ignore_errors: true
    - name: the systemd module fails a state change outside a chroot
      systemd: {name: gatest-offline, state: started}
      register: unknown
      ignore_errors: true
    - name: results
      copy:
        dest: /out/results-{{ run }}.json
        content: "{{ {'reload': reload, 'reload_failed': reload_failed.msg | default(''), 'refused': refused.msg, 'unknown': unknown.msg} | to_json }}"
"""

UNIT = """\
[Unit]
Description={name}
[Service]
ExecStart=/bin/sleep infinity
[Install]
WantedBy=multi-user.target
"""

# An LSB-style init script whose "daemon" is a state file (nothing runs).
INIT_SCRIPT = """\
#!/bin/sh
### BEGIN INIT INFO
# Provides:          gatest-offline
# Required-Start:
# Required-Stop:
# Default-Start:     2 3 4 5
# Default-Stop:      0 1 6
# Short-Description: test service
### END INIT INFO
case "$1" in
  start) echo running > /run/gatest-offline.state; echo start >> /out/initd.log ;;
  stop) rm -f /run/gatest-offline.state; echo stop >> /out/initd.log ;;
  status) test -f /run/gatest-offline.state ;;
  *) exit 3 ;;
esac
"""

SCRIPT = """\
set -e
for u in gatest-offline gatest-unitonly; do
  sed "s/{name}/$u/" /srv/pb/unit.in > /etc/systemd/system/$u.service
done
sed "s/{name}/gatest-masked/" /srv/pb/unit.in > /lib/systemd/system/gatest-masked.service
install -m 0755 /srv/pb/initd /etc/init.d/gatest-offline
test ! -e /run/systemd/system
gitops-agent converge --check --playbook-dir /srv/pb --playbook local.yml -e run=check --format json > /out/check.json || true
gitops-agent converge --playbook-dir /srv/pb --playbook local.yml -e run=1 --format json > /out/run1.json || true
gitops-agent converge --playbook-dir /srv/pb --playbook local.yml -e run=2 --format json > /out/run2.json || true
readlink /etc/systemd/system/multi-user.target.wants/gatest-offline.service > /out/links.txt || true
readlink /etc/systemd/system/multi-user.target.wants/gatest-unitonly.service >> /out/links.txt || true
readlink /etc/systemd/system/gatest-masked.service >> /out/links.txt || true
"""


def run_unbooted(rootfs: Path, agent: Path, pb: Path, out: Path, timeout: float = 300):
    """SCRIPT as PID 1 of an unbooted nspawn container (own PID/mount/network namespaces,
    volatile overlay: the tree stays as it was), in a cgroup of its own."""
    name = f"{ct.NAME_PREFIX}-{os.getpid()}-{secrets.token_hex(3)}"
    cgroups = ct._own_cgroups(name)
    procs = [str(d / "cgroup.procs") for d in cgroups]

    def join_own_cgroups():
        for f in procs:
            with open(f, "w") as fh:
                fh.write(str(os.getpid()))

    argv = ["systemd-nspawn", f"--directory={rootfs}", "--volatile=overlay", "--register=no",
            "--keep-unit", f"--machine={name}", "--private-network", "--console=pipe",
            "--link-journal=no", "--resolv-conf=off", "--timezone=off", "--quiet",
            f"--bind-ro={os.path.realpath(agent)}:{ct.AGENT_PATH}",
            f"--bind-ro={pb}:/srv/pb", f"--bind={out}:/out",
            "--setenv=PATH=" + ct.CONTAINER_PATH, "--setenv=LANG=C.UTF-8",
            "--", "/bin/sh", "-c", SCRIPT]
    env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), "SYSTEMD_NSPAWN_LOCK": "0",
           "LANG": "C.UTF-8"}
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            env=env, start_new_session=True, preexec_fn=join_own_cgroups, text=True)
    try:
        output, _ = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
        ct.safe_rmtree(Path("/run/systemd/nspawn/propagate") / name)
        for d in cgroups:
            ct._remove_cgroup_tree(d)
    assert proc.returncode == 0, f"nspawn script failed ({proc.returncode}):\n{output}"
    return output


def statuses(path: Path) -> dict[str, tuple[str, bool]]:
    raw = json.loads(path.read_text())
    return {t["name"]: (t["status"], bool(t.get("changed"))) for t in raw["tasks"] if t.get("name")}


@pytest.fixture
def offline_run(rootfs, agent_binary, tmp_path):
    pb = tmp_path / "pb"
    out = tmp_path / "out"
    pb.mkdir()
    out.mkdir()
    (pb / "local.yml").write_text(PLAYBOOK)
    (pb / "unit.in").write_text(UNIT)
    (pb / "initd").write_text(INIT_SCRIPT)
    run_unbooted(rootfs, agent_binary, pb, out)
    return out


def test_service_without_running_systemd(offline_run):
    out = offline_run
    check, run1, run2 = (statuses(out / f) for f in ("check.json", "run1.json", "run2.json"))
    changing = ["enable a unit with an init script", "enable a unit without one", "mask a unit",
                "start through the init script"]
    for name in changing:
        assert run1[name] == ("changed", True), (name, run1)
        assert check[name][1], (name, check)
        assert run2[name] == ("ok", False), (name, run2)
    for run in (run1, run2):
        assert run["daemon-reload alone fails outside a chroot, as Ansible's"] == ("ignored", False), run
    # check mode does not run daemon-reload (as Ansible)
    assert check["daemon-reload alone fails outside a chroot, as Ansible's"] == ("ok", False), check
    for run in (check, run1, run2):
        assert run["daemon-reload alone, SYSTEMD_OFFLINE=1"] == ("ok", False), run
        assert run["stopped holds without an init script"] == ("ok", False)
        assert run["started is refused without an init script"][0] == "ignored"
        assert run["the systemd module fails a state change outside a chroot"][0] == "ignored"
    # the symlinks systemctl wrote offline, and the init script ran once (start), not in --check
    links = (out / "links.txt").read_text().split()
    assert links == ["/etc/systemd/system/gatest-offline.service",
                     "/etc/systemd/system/gatest-unitonly.service", "/dev/null"], links
    assert (out / "initd.log").read_text().split() == ["start"]
    res = json.loads((out / "results-1.json").read_text())
    assert res["reload"]["changed"] is False
    assert any("offline" in w for w in res["reload"]["warnings"]), res
    assert res["reload_failed"].startswith("failure 1 during daemon-reload: System has not been booted"), res
    assert "gatest-unitonly" in res["refused"] and "/etc/init.d/gatest-unitonly" in res["refused"], res
    assert res["unknown"].startswith("Service is in unknown state"), res
