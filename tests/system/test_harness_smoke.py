"""Smoke tests of the systemd-container harness itself: the container is a real, isolated system,
the test repositories work with the real package managers, and the agent and ansible-core run
inside. Each assertion checks behaviour the tier's real tests rely on."""
from __future__ import annotations

import os
import subprocess
import textwrap

import pytest

import container as ct
import harness
from container import APT_MOUNT, OUT_MOUNT, SOLO_MOUNT


def dpkg_status(c: ct.Container, pkg: str) -> str:
    p = c.run(["dpkg-query", "-W", "-f", "${Status} ${Version}", pkg], check=False)
    return p.stdout.strip() if p.returncode == 0 else "not-installed"


def test_pid1_is_systemd_in_own_namespaces(container):
    c = container
    assert c.read_file("/proc/1/comm").strip() == "systemd"
    assert c.run("readlink /proc/1/exe").stdout.strip() in ("/usr/lib/systemd/systemd", "/lib/systemd/systemd")
    state = c.run("systemctl is-system-running", check=False).stdout.strip()
    assert state in ("running", "degraded"), state
    assert c.failed_units == [], f"units failed at boot: {c.failed_units}\n{c.journal(lines=40)}"
    # systemd as PID 1 of its own PID namespace; on the host it is some other PID
    assert c.pid != 1
    for ns in ("pid", "mnt", "net", "uts"):
        assert os.readlink(f"/proc/{c.pid}/ns/{ns}") != os.readlink(f"/proc/self/ns/{ns}"), ns
    assert c.run("hostname").stdout.strip() == "gatest"
    assert c.read_file("/etc/machine-id").strip() == ct.MACHINE_ID
    # the tree is shared read-only: writes land in the container's overlay, never in the cache
    c.write_file("/etc/gatest-overlay-probe", "x\n")
    assert c.read_file("/etc/gatest-overlay-probe") == "x\n"
    assert not (c.rootfs / "etc/gatest-overlay-probe").exists()


def test_network_is_loopback_only(container):
    c = container
    # the container's network namespace is the one the harness created
    assert os.stat(f"/run/netns/{c.netns}").st_ino == os.stat(f"/proc/{c.pid}/ns/net").st_ino
    assert c.run("ls /sys/class/net").stdout.split() == ["lo"]
    probe = textwrap.dedent("""
        import errno, socket
        for addr in [("192.0.2.1", 80), ("1.1.1.1", 53)]:
            s = socket.socket(); s.settimeout(3)
            try:
                s.connect(addr); print("connected", addr)
            except OSError as e:
                print(errno.errorcode.get(e.errno, e.errno))
        srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen(1)
        cli = socket.create_connection(srv.getsockname(), timeout=3); print("loopback ok")
    """)
    out = c.run(["python3", "-c", probe]).stdout.split()
    assert out == ["ENETUNREACH", "ENETUNREACH", "loopback", "ok"], out
    # no DNS either (no resolver config leaked from the host would help without a route anyway)
    p = c.run("getent hosts example.org", check=False)
    assert p.returncode != 0, p.stdout


def test_binds(container, out_dir, apt_repo):
    c = container
    # read-only repo bind
    p = c.run(f"touch {APT_MOUNT}/gatest-probe", check=False)
    assert p.returncode != 0 and "Read-only file system" in p.stderr, p
    assert not (apt_repo.path / "gatest-probe").exists()
    # read-write output bind
    c.write_file(f"{OUT_MOUNT}/from-container.txt", "hello host\n")
    assert (out_dir / "from-container.txt").read_text() == "hello host\n"
    if c.agent:
        assert c.run(f"{ct.AGENT_PATH} --version").returncode == 0


def test_apt_install_with_dependency(container, apt_repo):
    c = container
    c.add_apt_repo(apt_repo, APT_MOUNT)
    assert dpkg_status(c, "gatest-lib") == "not-installed"
    c.run("apt-get install -y -q gatest-app")
    assert dpkg_status(c, "gatest-app") == "install ok installed 1.0"
    assert dpkg_status(c, "gatest-lib") == "install ok installed 1.0"   # came along as a dependency
    assert c.run("gatest-app").stdout.strip() == "gatest-app 1.0 with gatest-lib 1.0"
    snap = c.snapshot("/usr/share/gatest-lib")
    assert snap["VERSION"]["content"] == b"1.0\n" and snap["VERSION"]["mode"] == "0o100644", snap
    # the postinst-fails package really fails and is left half-configured
    p = c.run("apt-get install -y -q gatest-broken", check=False)
    assert p.returncode != 0
    assert dpkg_status(c, "gatest-broken") == "install ok half-configured 1.0"
    # a local .deb (not in the index)
    assert c.run("apt-cache policy gatest-solo").stdout.strip() == ""
    c.run(f"dpkg -i {SOLO_MOUNT}")
    assert c.read_file("/usr/share/gatest-solo/README") == "gatest-solo 1.0\n"


def test_service_from_package(container, apt_repo):
    c = container
    c.add_apt_repo(apt_repo, APT_MOUNT)
    c.run("apt-get install -y -q gatest-hello=1.0")
    assert c.read_file("/usr/share/gatest-hello/VERSION") == "1.0\n"
    assert "greeting=hello from 1.0" in c.read_file("/etc/gatest-hello.conf")
    # the package ships the unit but neither enables nor starts it
    assert c.is_active("gatest-hello") == "inactive"
    assert c.run("systemctl is-enabled gatest-hello", check=False).stdout.strip() == "disabled"
    c.systemctl("start", "gatest-hello")
    assert c.is_active("gatest-hello") == "active"
    main_pid = int(c.run("systemctl show -P MainPID gatest-hello").stdout)
    assert main_pid > 1
    assert c.read_file(f"/proc/{main_pid}/comm").strip() == "sleep"
    assert "gatest-hello 1.0 running" in c.journal("gatest-hello")
    # upgrade with a locally modified conffile: old one kept with --force-confold
    c.write_file("/etc/gatest-hello.conf", "greeting=local edit\n")
    c.run("apt-get install -y -q -o Dpkg::Options::=--force-confold gatest-hello=2.0")
    assert c.read_file("/usr/share/gatest-hello/VERSION") == "2.0\n"
    assert c.read_file("/etc/gatest-hello.conf") == "greeting=local edit\n"
    assert c.exists("/etc/gatest-hello.conf.dpkg-dist")
    c.systemctl("enable", "--now", "gatest-hello")
    assert c.run("systemctl is-enabled gatest-hello").stdout.strip() == "enabled"
    c.systemctl("stop", "gatest-hello")
    assert c.is_active("gatest-hello") == "inactive"


def test_dnf_installroot(rpm_repo, tmp_path):
    root = tmp_path / "root"
    dnf = rpm_repo.dnf_argv(root)

    def rpmq(*names):
        return subprocess.run(["rpm", f"--root={root}", "-q", *names], capture_output=True, text=True)

    p = subprocess.run(dnf + ["install", "gatest-app"], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert rpmq("gatest-app", "gatest-lib").stdout.split() == ["gatest-app-1.0-1.noarch", "gatest-lib-1.0-1.noarch"]
    assert (root / "usr/share/gatest-lib/VERSION").read_text() == "1.0\n"
    p = subprocess.run(dnf + ["install", "gatest-hello-1.0"], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert (root / "usr/lib/systemd/system/gatest-hello.service").exists()
    p = subprocess.run(dnf + ["upgrade", "gatest-hello"], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert (root / "usr/share/gatest-hello/VERSION").read_text() == "2.0\n"
    p = subprocess.run(dnf + ["install", "gatest-broken"], capture_output=True, text=True, timeout=300)
    assert p.returncode != 0
    assert rpmq("gatest-broken").returncode != 0


def test_pkgrepo_reproducible(apt_repo, tmp_path):
    """The cached .debs are what a fresh build gives, byte for byte."""
    import pkgrepo
    for pkg in pkgrepo.packages():
        fresh = pkgrepo.build_deb(pkg, tmp_path, tmp_path / f"w-{pkg.name}-{pkg.version}")
        assert fresh.read_bytes() == apt_repo.debs[f"{pkg.name}_{pkg.version}"].read_bytes(), pkg.deb_name


def test_agent_converge_inside(make_container, agent, tmp_path):
    pb = tmp_path / "pb"
    pb.mkdir()
    (pb / "site.yml").write_text(textwrap.dedent("""\
        - hosts: all
          gather_facts: false
          tasks:
            - name: a file inside the container
              copy:
                content: "converged\\n"
                dest: /etc/gatest-converged
                mode: "0640"
    """))
    c = make_container([ct.Bind(pb, "/playbook")], agent=agent)
    r = c.converge("/playbook", playbook="site.yml")
    assert r.rc == 2, r.describe()
    assert [(t["name"], t["changed"]) for t in r.tasks] == [("a file inside the container", True)], r.describe()
    assert c.read_file("/etc/gatest-converged") == "converged\n"
    assert c.run("stat -c %a /etc/gatest-converged").stdout.strip() == "640"
    r = c.converge("/playbook", playbook="site.yml")
    assert r.rc == 0, r.describe()


VENV = harness.ansible_bin_dir().parent


@pytest.mark.skipif(not (VENV / "bin" / "ansible-playbook").exists(), reason=f"no ansible venv at {VENV}")
def test_ansible_inside(make_container, apt_repo, tmp_path):
    """ansible-core from the host venv, run with -c local inside: apt + service modules for real."""
    pb = tmp_path / "pb"
    pb.mkdir()
    (pb / "site.yml").write_text(textwrap.dedent(f"""\
        - hosts: localhost
          gather_facts: false
          tasks:
            - name: the test repo
              copy:
                content: "deb [trusted=yes] file:{APT_MOUNT} ./\\n"
                dest: /etc/apt/sources.list.d/gatest.list
            - name: install gatest-app and gatest-hello
              apt:
                name: [gatest-app, gatest-hello=1.0]
                update_cache: true
            - name: start gatest-hello
              service:
                name: gatest-hello
                state: started
                enabled: true
    """))
    c = make_container([ct.Bind(pb, "/playbook")], ansible=True)
    r = c.ansible_playbook("/playbook")
    assert r.rc == 0, r.describe()
    assert [(t["name"], t["status"], t["changed"]) for t in r.tasks] == [
        ("the test repo", "changed", True), ("install gatest-app and gatest-hello", "changed", True),
        ("start gatest-hello", "changed", True)], r.describe()
    assert dpkg_status(c, "gatest-lib") == "install ok installed 1.0"
    assert c.is_active("gatest-hello") == "active"
    r = c.ansible_playbook("/playbook")
    assert r.rc == 0 and r.changed_count() == 0, r.describe()
