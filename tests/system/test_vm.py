"""The installed .deb on a real machine: boot, the watchdog, reboot (the VM tier, tests/lib/vm.py).

What a container cannot show runs here, in a qemu VM (TCG) restored from a saved, booted state:
the package installed with dpkg onto a machine whose PID 1 booted from a kernel, the unit enabled
at boot and started by the boot itself after a reboot, the watchdog of that systemd restarting a
hung agent. The guest pulls over smart HTTP from a Git server the test runs on the host's
127.0.0.1 (cgi_server.py around `git http-backend`), reached as http://10.0.2.100/ through
qemu's guestfwd (the guest reaches nothing else), with signed commits required
(`allowed_signers`), and installs a package from a local APT repository of test packages.

One VM for the module; the tests run in order and build on each other:
  1. install + first converge: files, a package from the local repository, its service enabled
     and running, a user; a status commit on the host's server naming the applied commit;
  2. `systemctl kill -s SIGSTOP gitops-agent`: the watchdog restarts it;
  3. a new signed commit pushed, the machine rebooted: the agent starts at boot (nobody starts
     it), applies the commit, the service is running again, a status commit names the commit.

Run alone (tests/run-all.sh runs it in its own stage, after the other tiers: a TCG VM needs both
cores). Timing lines show restore, converge, watchdog and reboot times.
"""
from __future__ import annotations

import shutil
import sys
import textwrap
import time
from pathlib import Path

import pytest

import container as ct
import gitserver
import pkgrepo
from conftest import require_tools  # the `packages` fixture (the .deb under test) is there too
from gitserver import GitHttpServer, git, ssh_keygen

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))
import vm as vmlib  # noqa: E402

HOST = ct.HOSTNAME
UNIT = "gitops-agent.service"
GREETING = "/etc/gatest-greeting"
APT_DIR = "/srv/gatest-apt"     # the test repository, copied from the payload onto the guest's disk


# --------------------------------------------------------------------------
# host side: signed fleet repository, status repository, HTTP server
# --------------------------------------------------------------------------
PLAYBOOK = """\
- hosts: all
  gather_facts: false
  tasks:
    - name: test package repository
      apt_repository:
        repo: "deb [trusted=yes] file:{apt} ./"
        filename: gatest
    - name: gatest-hello installed
      apt:
        name: gatest-hello
        update_cache: true
        cache_valid_time: 3600
    - name: greeting
      template:
        src: greeting.j2
        dest: {greeting}
        mode: "0644"
      notify: restart hello
    - name: hello running and enabled
      systemd:
        name: gatest-hello
        state: started
        enabled: true
    - name: demo user
      user:
        name: gademo
        shell: /bin/bash
  handlers:
    - name: restart hello
      systemd:
        name: gatest-hello
        state: restarted
"""


class Fleet:
    """Bare fleet + status repositories under ROOT, served over smart HTTP on the host's
    127.0.0.1, and the administrator's work tree committing SSH-signed to hosts/<HOST>."""

    def __init__(self, root: Path):
        self.fleet, self.status = root / "fleet.git", root / "status.git"
        git("init", "-q", "--bare", str(self.fleet))
        git("init", "-q", "--bare", str(self.status))
        key = root / "signing_key"
        pub = ssh_keygen(key, "admin@example.org").split()
        self.allowed_signers = f'admin@example.org namespaces="git" {pub[0]} {pub[1]}\n'
        self.work = gitserver.Fleet(root / "work", self.fleet, f"hosts/{HOST}", key)
        self.server = GitHttpServer(root, netns=None, log=root / "http.log")

    def commit(self, greeting: str, message: str) -> str:
        return self.work.commit(message, {
            "local.yml": PLAYBOOK.format(apt=APT_DIR, greeting=GREETING),
            "templates/greeting.j2": greeting + " from {{ inventory_hostname }}\n",
        })

    def status_log(self) -> list[str]:
        return git("--git-dir", str(self.status), "log", "--format=%H %s", f"status/{HOST}",
                   check=False).splitlines()

    def status_doc(self) -> str:
        return git("--git-dir", str(self.status), "show", f"status/{HOST}:status.yml")


def config() -> str:
    return textwrap.dedent(f"""\
        # written by tests/system/test_vm.py
        repo: http://{vmlib.FWD_ADDR}/git/fleet.git
        # the tests decide when the agent looks: at start (boot) and on SIGUSR1
        interval: 1h
        splay: 0s
        signing:
          allowed_signers: /etc/gitops-agent/allowed_signers
          require: true
        status:
          repo: http://{vmlib.FWD_ADDR}/git/status.git
        """)


# --------------------------------------------------------------------------
# fixtures
# --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    require_tools("ssh-keygen", "git", hint="apt-get install openssh-client git")
    f = Fleet(tmp_path_factory.mktemp("vm-fleet"))
    with f.server:
        yield f


@pytest.fixture(scope="module")
def machine(packages, fleet, tmp_path_factory):
    require_tools(vmlib.QEMU, "qemu-img", "socat", "mkfs.ext4", "zstd",
                  hint="apt-get install qemu-system-x86 qemu-utils socat e2fsprogs zstd")
    t0 = time.monotonic()
    img = vmlib.build_image(ct.build_rootfs())
    payload = tmp_path_factory.mktemp("vm-payload")
    shutil.copy(packages["deb"], payload / "gitops-agent.deb")
    shutil.copytree(pkgrepo.build_apt_repo().path, payload / "apt")
    vmlib.timing(f"vm image ready {time.monotonic() - t0:.1f}s ({img.dir.name})")
    with vmlib.Vm(img, payload=payload, git_port=fleet.server.port) as m:
        yield m


def show(m: vmlib.Vm, unit: str, *props: str) -> dict[str, str]:
    out = m.run(["systemctl", "show", unit, "-p", ",".join(props)]).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def wait_for(what: str, fn, m: vmlib.Vm, timeout: float = 120):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})\n--- journal ---\n"
                         f"{journal(m)}")


def journal(m: vmlib.Vm, lines: int = 80) -> str:
    return m.run(f"journalctl -b --no-pager -n {lines} -u {UNIT}", check=False).stdout


def applied_in_status(fleet: Fleet, commit: str):
    log = fleet.status_log()
    return log and commit[:7] in log[0] and log


# --------------------------------------------------------------------------
# scenarios (in order)
# --------------------------------------------------------------------------
def test_install_and_first_converge(machine, fleet):
    m, t0 = machine, time.monotonic()
    c1 = fleet.commit("hello", "gatest: first desired state")
    m.run(f"cp -a {vmlib.PAYLOAD_MOUNT}/apt {APT_DIR}")
    m.run(f"dpkg -i {vmlib.PAYLOAD_MOUNT}/gitops-agent.deb")
    assert m.run(["systemctl", "is-enabled", UNIT], check=False).stdout.strip() == "enabled"
    m.write_file("/etc/gitops-agent/allowed_signers", fleet.allowed_signers)
    m.write_file("/etc/gitops-agent/config.yml", config())
    # a short watchdog for test 2 (the unit's is 2 min); no core dump of the SIGABRT
    m.write_file("/etc/systemd/system/gitops-agent.service.d/test.conf",
                 "[Service]\nWatchdogSec=10s\nRestartSec=1s\nTimeoutAbortSec=10s\nLimitCORE=0\n")
    m.run("systemctl daemon-reload")
    t1 = time.monotonic()
    m.run(["systemctl", "start", UNIT], timeout=600)        # returns after READY=1: first converge done
    vmlib.timing(f"vm: first converge under systemd {time.monotonic() - t1:.1f}s")
    st = show(m, UNIT, "ActiveState", "StatusText")
    assert st["ActiveState"] == "active" and c1[:7] in st["StatusText"], (st, journal(m))

    # ansible-pull's inventory `localhost,`: inventory_hostname is localhost, not the host name
    assert m.read_file(GREETING) == "hello from localhost\n"
    assert m.run("dpkg-query -W -f='${Status} ${Version}' gatest-hello").stdout == "install ok installed 2.0"
    hello = show(m, "gatest-hello.service", "ActiveState", "UnitFileState")
    assert hello == {"ActiveState": "active", "UnitFileState": "enabled"}, hello
    assert m.run("getent passwd gademo").stdout.split(":")[6].strip() == "/bin/bash"

    log = wait_for("a status commit naming the first commit", lambda: applied_in_status(fleet, c1), m, 60)
    assert log[0].split(" ", 1)[1].startswith(f"{HOST}: changed {c1[:7]}"), log
    doc = fleet.status_doc()
    assert f"commit_applied: {c1}" in doc and "result: changed" in doc, doc
    vmlib.timing(f"vm scenario install + first converge {time.monotonic() - t0:.1f}s")


def test_watchdog_restarts_a_hung_agent(machine):
    m, t0 = machine, time.monotonic()
    before = show(m, UNIT, "MainPID", "NRestarts")
    assert before["MainPID"] != "0", before
    m.run(["systemctl", "kill", "-s", "SIGSTOP", UNIT])
    after = wait_for("systemd's watchdog to restart the agent",
                     lambda: (s := show(m, UNIT, "ActiveState", "MainPID", "NRestarts"))["ActiveState"] == "active"
                     and s["MainPID"] not in ("0", before["MainPID"]) and int(s["NRestarts"]) > int(before["NRestarts"])
                     and s, m, 120)
    journal = m.run(f"journalctl -b --no-pager -u {UNIT}").stdout
    assert "Watchdog timeout" in journal, journal[-3000:]
    vmlib.timing(f"vm scenario watchdog restart {time.monotonic() - t0:.1f}s (pid {before['MainPID']} -> "
                 f"{after['MainPID']})")


def test_reboot_starts_the_agent_which_applies_the_new_commit(machine, fleet):
    m, t0 = machine, time.monotonic()
    c2 = fleet.commit("good morning", "gatest: new greeting")
    took = m.reboot()
    # nobody started it: the boot did (enabled at boot), and its first converge applied c2
    st = wait_for("the agent active after boot", lambda: (s := show(
        m, UNIT, "ActiveState", "ActiveEnterTimestampMonotonic", "StatusText"))["ActiveState"] == "active" and s, m, 300)
    assert int(st["ActiveEnterTimestampMonotonic"]) > 0, st
    assert c2[:7] in st["StatusText"], st
    assert m.read_file(GREETING) == "good morning from localhost\n"
    assert show(m, "gatest-hello.service", "ActiveState")["ActiveState"] == "active"
    log = wait_for("a status commit naming the new commit", lambda: applied_in_status(fleet, c2), m, 120)
    assert len(log) >= 2, log
    assert f"commit_applied: {c2}" in fleet.status_doc()
    boot_journal = m.run(f"journalctl -b --no-pager -u {UNIT}").stdout
    assert "Started gitops-agent.service" in boot_journal or "Started gitops-agent" in boot_journal, boot_journal
    vmlib.timing(f"vm scenario reboot + converge at boot {time.monotonic() - t0:.1f}s (reboot {took:.1f}s)")
