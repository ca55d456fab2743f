"""The .deb and .rpm that packaging/build.sh makes.

The .deb goes through its whole life in a booted bookworm container (systemd as PID 1, own
netns): install (enabled, not started without a `repo`), configured against a bare Git repository
bound into the container (file://), started (Type=notify READY, STATUS=, a converge, a status
commit in a second bare repository bound read-write), hung with SIGSTOP (the watchdog restarts
it), upgraded to a second build with a higher version (the locally edited conffile and the state
stay, the running service is restarted), removed (stopped, config and state kept), purged (state
gone).

Both pass their distribution's linter without an error or a warning: lintian (with the overrides
of packaging/deb/lintian-overrides, each with its reason) and rpmlint (with
packaging/rpm/rpmlint.toml).

The .rpm is checked from the outside (file list, config files, scriptlets, dependencies) and
unpacked with `rpm --root <scratch> -i --nodeps --noscripts`; its scriptlets run under bookworm's
rpm in a booted container (install, upgrade, erase; no RPM-based systemd root can be built here,
see packaging/README.md).

The packages are built once per session from the agent under test (GITOPS_AGENT_BIN, the debug
build by default: `build.sh --binary ... --fast`), so CI needs no release build.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import textwrap
import time
from pathlib import Path

import pytest

import container as ct
import harness
from conftest import V1, V2, require_tools  # the `packages` fixture is there too

REPO = Path(__file__).resolve().parents[2]
PKGS_AT = "/srv/packages"
FLEET_AT = "/srv/fleet.git"
STATUS_AT = "/srv/status.git"
UNIT = "gitops-agent.service"
MANAGED = "/etc/gatest-managed.txt"


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------
def git(*args, cwd=None, env=None) -> str:
    e = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.com", GIT_COMMITTER_NAME="t",
             GIT_COMMITTER_EMAIL="t@example.com", GIT_CONFIG_NOSYSTEM="1", HOME=str(cwd or "/nonexistent"))
    e.update(env or {})
    return subprocess.run(["git", *args], cwd=cwd, env=e, check=True, capture_output=True, text=True).stdout


def make_fleet(tmp: Path) -> tuple[Path, Path]:
    """A bare fleet repo with hosts/gatest (local.yml writes MANAGED) and an empty bare status repo."""
    fleet, status, work = tmp / "fleet.git", tmp / "status.git", tmp / "work"
    git("init", "-q", "--bare", str(fleet), cwd=tmp)
    git("init", "-q", "--bare", str(status), cwd=tmp)
    work.mkdir()
    git("init", "-q", "-b", "hosts/gatest", cwd=work)
    (work / "local.yml").write_text(textwrap.dedent(f"""\
        - hosts: all
          gather_facts: false
          tasks:
            - name: managed file
              copy:
                dest: {MANAGED}
                content: "converged by the packaged agent\\n"
                mode: "0644"
        """))
    git("add", "-A", cwd=work)
    git("commit", "-q", "-m", "gatest: first", cwd=work)
    git("push", "-q", str(fleet), "hosts/gatest", cwd=work)
    # the container's root must be able to write the status repo (same uid: root)
    return fleet, status


def show(c: ct.Container, *props: str) -> dict[str, str]:
    out = c.run(["systemctl", "show", UNIT, "-p", ",".join(props)]).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def wait_for(what: str, fn, timeout: float = 60, c: ct.Container | None = None):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(0.2)
    extra = f"\n--- journal ---\n{c.journal(UNIT, 60)}" if c else ""
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r}){extra}")


def mode_owner(c: ct.Container, path: str) -> str:
    return c.run(["stat", "-c", "%a %U:%G %F", path]).stdout.strip()


CONFIG = f"""\
# written by tests/system/test_package.py
repo: file://{FLEET_AT}
interval: 5s
splay: 0s
status:
  repo: file://{STATUS_AT}
"""


# --------------------------------------------------------------------------
# .deb: outside view (cheap)
# --------------------------------------------------------------------------
def test_deb_metadata_and_contents(packages):
    deb = packages["deb"]
    f = lambda field: subprocess.run(["dpkg-deb", "-f", str(deb), field], capture_output=True, text=True,
                                     check=True).stdout.strip()
    assert f("Package") == "gitops-agent" and f("Version") == V1
    assert f("Depends").startswith("libc6 (>= 2."), f("Depends")
    assert f("Recommends") == "ca-certificates, openssh-client"
    assert f("Suggests") == "git"
    listing = subprocess.run(["dpkg-deb", "-c", str(deb)], capture_output=True, text=True, check=True).stdout
    entries = {line.split()[-1].lstrip("."): line.split()[0] for line in listing.splitlines()}
    for path, mode in {"/usr/bin/gitops-agent": "-rwxr-xr-x", "/usr/libexec/gitops-agent/gitops-agentd": "-rwxr-xr-x",
                       "/lib/systemd/system/gitops-agent.service": "-rw-r--r--",
                       "/etc/gitops-agent/config.yml": "-rw-r--r--", "/var/lib/gitops-agent/": "drwxr-xr-x",
                       "/usr/share/man/man1/gitops-agent.1.gz": "-rw-r--r--",
                       "/usr/share/man/man1/gitops-agent-converge.1.gz": "-rw-r--r--",
                       "/usr/share/bash-completion/completions/gitops-agent": "-rw-r--r--",
                       "/usr/share/zsh/vendor-completions/_gitops-agent": "-rw-r--r--",
                       "/usr/share/fish/vendor_completions.d/gitops-agent.fish": "-rw-r--r--",
                       "/usr/share/doc/gitops-agent/copyright": "-rw-r--r--",
                       "/usr/share/doc/gitops-agent/changelog.gz": "-rw-r--r--",
                       "/usr/share/lintian/overrides/gitops-agent": "-rw-r--r--",
                       "/usr/share/doc/gitops-agent/README.md": "-rw-r--r--",
                       "/usr/share/doc/gitops-agent/docs/status.md": "-rw-r--r--"}.items():
        assert entries.get(path) == mode, (path, entries.get(path))
    assert all(" root/root " in line for line in listing.splitlines())
    ctrl = subprocess.run(["dpkg-deb", "--ctrl-tarfile", str(deb)], capture_output=True, check=True).stdout
    names = subprocess.run(["tar", "-t"], input=ctrl, capture_output=True, check=True).stdout.decode().split()
    for n in ("./conffiles", "./postinst", "./prerm", "./postrm", "./md5sums"):
        assert n in names, names
    conffiles = subprocess.run(["dpkg-deb", "-I", str(deb), "conffiles"], capture_output=True, text=True,
                               check=True).stdout.split()
    assert conffiles == ["/etc/gitops-agent/config.yml"]


# --------------------------------------------------------------------------
# Debian's and RPM's linters: no error, no warning (overrides and filters say why)
# --------------------------------------------------------------------------
def test_deb_is_lintian_clean(packages):
    require_tools("lintian", hint="apt-get install lintian (tests/setup-host.sh)")
    overrides = (REPO / "packaging/deb/lintian-overrides").read_text()
    # every override has its reason: a comment line right above each block of tags
    blocks = [b for b in overrides.split("\n\n") if "gitops-agent:" in b]
    assert blocks and all(b.lstrip().startswith("#") for b in blocks), overrides
    for deb in (packages["deb"], packages["deb2"]):
        p = subprocess.run(["lintian", "--fail-on", "error,warning", "--info", str(deb)],
                           capture_output=True, text=True)
        tags = [line for line in p.stdout.splitlines() if line[:2] in ("E:", "W:")]
        assert p.returncode == 0 and not tags, f"lintian {deb.name}: rc={p.returncode}\n{p.stdout}\n{p.stderr}"


def test_rpm_is_rpmlint_clean(packages):
    require_tools("rpmlint", hint="apt-get install rpmlint (tests/setup-host.sh)")
    for rpm in (packages["rpm"], packages["rpm2"]):
        # -s: warnings count as errors; the config is a distribution profile plus filters
        p = subprocess.run(["rpmlint", "-s", "-c", str(REPO / "packaging/rpm/rpmlint.toml"), str(rpm)],
                           capture_output=True, text=True)
        assert p.returncode == 0 and " 0 errors, 0 warnings" in p.stdout, \
            f"rpmlint {rpm.name}: rc={p.returncode}\n{p.stdout}\n{p.stderr}"


# --------------------------------------------------------------------------
# .deb: the whole life under systemd
# --------------------------------------------------------------------------
def test_deb_lifecycle_under_systemd(packages, rootfs, tmp_path):
    t_all = time.monotonic()
    fleet, status = make_fleet(tmp_path)
    pk = tmp_path / "packages"
    pk.mkdir()
    for k in ("deb", "deb2"):
        shutil.copy(packages[k], pk / packages[k].name)
    binds = [ct.Bind(pk, PKGS_AT), ct.Bind(fleet, FLEET_AT), ct.Bind(status, STATUS_AT, ro=False)]
    steps = []

    def step(name, t):
        steps.append(f"{name} {time.monotonic() - t:.1f}s")

    with ct.Container(rootfs, binds) as c:
        try:
            # -- install: files, modes, conffile; enabled but not started (no repo yet) ----------
            t = time.monotonic()
            c.run(["dpkg", "-i", f"{PKGS_AT}/{packages['deb'].name}"])
            assert mode_owner(c, "/usr/bin/gitops-agent") == "755 root:root regular file"
            assert mode_owner(c, "/etc/gitops-agent/config.yml") == "644 root:root regular file"
            assert mode_owner(c, "/var/lib/gitops-agent") == "755 root:root directory"
            assert c.run("dpkg-query -W -f='${Conffiles}' gitops-agent").stdout.split()[0] == \
                "/etc/gitops-agent/config.yml"
            assert c.run(["gitops-agent", "--version"]).stdout.strip() == f"gitops-agent {V1}"
            assert c.run(["systemctl", "is-enabled", UNIT], check=False).stdout.strip() == "enabled"
            c.run(["systemd-analyze", "verify", UNIT])
            # postinst queued a start (--no-block): the ExecCondition (no `repo`) turns it down
            wait_for("the start skipped by the ExecCondition",
                     lambda: "Skipped due to 'exec-condition'" in c.journal(UNIT, 50), timeout=30, c=c)
            st = show(c, "ActiveState", "Result", "ExecMainPID")
            assert st["ActiveState"] == "inactive", st
            assert not c.exists(MANAGED)
            assert c.run("man -w gitops-agent 2>/dev/null || test -e /usr/share/man/man1/gitops-agent.1.gz",
                         check=False).returncode == 0
            # the installed bash completion completes a subcommand
            comp = c.run(["bash", "-c", "source /usr/share/bash-completion/completions/gitops-agent; "
                          "COMP_WORDS=(gitops-agent conv); COMP_CWORD=1; COMP_LINE='gitops-agent conv'; "
                          "_gitops__agent gitops-agent conv gitops-agent; echo \"${COMPREPLY[@]}\""]).stdout
            assert comp.split() == ["converge"], comp
            step("install", t)

            # -- configure and start: READY after the first converge, status commit -----------
            t = time.monotonic()
            c.write_file("/etc/gitops-agent/config.yml", CONFIG)
            # short watchdog for the SIGSTOP scenario below (the unit's is 2min); no core dumps
            c.write_file("/etc/systemd/system/gitops-agent.service.d/test.conf",
                         "[Service]\nWatchdogSec=3s\nRestartSec=1s\nTimeoutAbortSec=5s\nLimitCORE=0\n")
            c.run(["systemctl", "daemon-reload"])
            c.run(["systemctl", "start", UNIT], timeout=120)   # returns after READY=1
            st = show(c, "ActiveState", "SubState", "StatusText", "MainPID", "NRestarts")
            assert st["ActiveState"] == "active", st
            assert c.read_file(MANAGED) == "converged by the packaged agent\n"
            assert st["StatusText"], st
            wait_for("a status commit on status/gatest",
                     lambda: subprocess.run(["git", "--git-dir", str(status), "log", "--format=%s",
                                             "status/gatest"], capture_output=True, text=True).stdout.strip(),
                     timeout=30, c=c)
            subject = subprocess.run(["git", "--git-dir", str(status), "log", "-1", "--format=%s", "status/gatest"],
                                     capture_output=True, text=True, check=True).stdout
            assert subject.startswith("gatest: "), subject
            assert c.exists("/var/lib/gitops-agent/state.json")
            step("configure+start+converge", t)

            # -- hung agent: the watchdog kills it (SIGABRT) and systemd restarts it -------------
            t = time.monotonic()
            pid0 = st["MainPID"]
            c.run(["systemctl", "kill", "-s", "SIGSTOP", UNIT])
            st = wait_for("a restart after the watchdog",
                          lambda: (s := show(c, "ActiveState", "MainPID", "NRestarts"))["NRestarts"] != "0"
                          and s["ActiveState"] == "active" and s["MainPID"] not in ("0", pid0) and s,
                          timeout=60, c=c)
            j = c.journal(UNIT, 200)
            assert "Watchdog timeout" in j, j
            if os.environ.get("GATEST_DEBUG"):
                print(j)
            step("watchdog restart", t)

            # -- upgrade: local config edit (conffile) and state kept, service restarted ---------
            t = time.monotonic()
            edited = CONFIG + "# local edit: must survive upgrades\n"
            c.write_file("/etc/gitops-agent/config.yml", edited)
            state_before = c.read_file("/var/lib/gitops-agent/state.json")
            pid1 = show(c, "MainPID")["MainPID"]
            c.run(["dpkg", "-i", f"{PKGS_AT}/{packages['deb2'].name}"])
            assert c.run("dpkg-query -W -f='${Version}' gitops-agent").stdout == V2
            assert c.read_file("/etc/gitops-agent/config.yml") == edited
            assert not c.exists("/etc/gitops-agent/config.yml.dpkg-new")
            assert c.run(["systemctl", "is-enabled", UNIT], check=False).stdout.strip() == "enabled"
            wait_for("the agent restarted by the upgrade",
                     lambda: (s := show(c, "ActiveState", "MainPID"))["ActiveState"] == "active"
                     and s["MainPID"] not in ("0", pid1), timeout=60, c=c)
            state_after = c.read_file("/var/lib/gitops-agent/state.json")
            assert _applied(state_before) and _applied(state_after) == _applied(state_before), \
                (state_before, state_after)
            step("upgrade", t)

            # -- remove: stopped; config and state kept --------------------------------------
            t = time.monotonic()
            c.run(["dpkg", "-r", "gitops-agent"])
            assert show(c, "ActiveState")["ActiveState"] in ("inactive", "failed")
            assert c.run("pgrep -x gitops-agent", check=False).returncode == 1
            assert not c.exists("/usr/bin/gitops-agent")
            assert c.read_file("/etc/gitops-agent/config.yml") == edited
            assert c.exists("/var/lib/gitops-agent/state.json")
            step("remove", t)

            # -- purge: state and config gone --------------------------------------------------
            t = time.monotonic()
            c.run(["dpkg", "-P", "gitops-agent"])
            assert not c.exists("/var/lib/gitops-agent")
            assert not c.exists("/etc/gitops-agent/config.yml")
            assert c.run("dpkg-query -W gitops-agent", check=False).returncode != 0
            step("purge", t)
        finally:
            ct.timing(f"deb lifecycle total {time.monotonic() - t_all:.1f}s: " + ", ".join(steps))


def _applied(state_json: str):
    import json
    d = json.loads(state_json)
    return d.get("last_applied")


# --------------------------------------------------------------------------
# .rpm: outside view and an unpack into a scratch root (no scriptlets run)
# --------------------------------------------------------------------------
def test_rpm_metadata_files_and_scriptlets(packages):
    require_tools("rpm")
    rpm = str(packages["rpm"])
    q = lambda *a: subprocess.run(["rpm", "-qp", *a, rpm], capture_output=True, text=True, check=True).stdout
    assert q("--qf", "%{NAME} %{VERSION} %{RELEASE} %{LICENSE}") == f"gitops-agent {V1} 1 Apache-2.0"
    files = set(q("-l").split())
    for path in ("/usr/bin/gitops-agent", "/usr/libexec/gitops-agent/gitops-agentd",
                 "/usr/lib/systemd/system/gitops-agent.service",
                 "/etc/gitops-agent/config.yml", "/var/lib/gitops-agent", "/usr/share/man/man1/gitops-agent.1.gz",
                 "/usr/share/bash-completion/completions/gitops-agent", "/usr/share/zsh/site-functions/_gitops-agent",
                 "/usr/share/fish/vendor_completions.d/gitops-agent.fish",
                 "/usr/share/licenses/gitops-agent/LICENSE", "/usr/share/doc/gitops-agent/README.md"):
        assert path in files, path
    assert q("--configfiles").split() == ["/etc/gitops-agent/config.yml"]
    # noreplace: an edited config.yml is never overwritten on upgrade
    flags = q("--qf", "[%{FILENAMES} %{FILEFLAGS:fflags}\n]")
    assert "/etc/gitops-agent/config.yml cn" in flags, flags
    assert set(q("--recommends").split()) == {"ca-certificates", "openssh-clients"}
    assert q("--suggests").split() == ["git-core"]
    scripts = q("--scripts")
    for part in ("postinstall scriptlet", "systemctl --no-reload enable gitops-agent.service",
                 "preuninstall scriptlet", "systemctl stop gitops-agent.service",
                 "postuninstall scriptlet", "try-restart gitops-agent.service"):
        assert part in scripts, (part, scripts)


def test_rpm_unpacks_into_scratch_root(packages, tmp_path):
    require_tools("rpm")
    root = tmp_path / "root"
    root.mkdir()
    subprocess.run(["rpm", "--root", str(root), "--initdb"], check=True, capture_output=True)
    p = subprocess.run(["rpm", "--root", str(root), "-i", "--nodeps", "--noscripts", str(packages["rpm"])],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    st = lambda rel: os.stat(root / rel.lstrip("/"))
    assert oct(st("/usr/bin/gitops-agent").st_mode & 0o7777) == "0o755"
    assert oct(st("/usr/libexec/gitops-agent/gitops-agentd").st_mode & 0o7777) == "0o755"
    assert oct(st("/etc/gitops-agent/config.yml").st_mode & 0o7777) == "0o644"
    assert (root / "var/lib/gitops-agent").is_dir()
    unit = (root / "usr/lib/systemd/system/gitops-agent.service").read_text()
    assert "ExecStart=/usr/bin/gitops-agent run" in unit
    assert (root / "etc/gitops-agent/config.yml").read_bytes() == (REPO / "packaging/config.yml").read_bytes()
    out = subprocess.run([str(root / "usr/bin/gitops-agent"), "--version"], capture_output=True, text=True)
    assert out.stdout.strip() == f"gitops-agent {V1}", out
    q = subprocess.run(["rpm", "--root", str(root), "-q", "gitops-agent"], capture_output=True, text=True)
    assert q.stdout.strip() == f"gitops-agent-{V1}-1.{os.uname().machine}"


def test_rpm_scriptlets_under_systemd(packages, rootfs, tmp_path):
    """The .rpm's scriptlets run for real: rpm (bookworm's, its own database) installs, upgrades
    and erases the package in a booted container, so %post/%preun/%postun talk to a real
    systemd. Not an RPM-based system (none can be built here): dependencies are not resolved
    (--nodeps) and the paths are Debian's, which the package does not depend on."""
    t_all = time.monotonic()
    fleet, status = make_fleet(tmp_path)
    pk = tmp_path / "packages"
    pk.mkdir()
    for k in ("rpm", "rpm2"):
        shutil.copy(packages[k], pk / packages[k].name)
    binds = [ct.Bind(pk, PKGS_AT), ct.Bind(fleet, FLEET_AT), ct.Bind(status, STATUS_AT, ro=False)]
    with ct.Container(rootfs, binds) as c:
        def rpm(mode: str, what: str):
            # Debian's rpm refuses to install into a dpkg system without --force-debian
            target = f"{PKGS_AT}/{packages[what].name}" if what in packages else what
            return c.run(["rpm", mode, "--nodeps", "--force-debian", target])

        # %post on install: enabled, a start queued, turned down by the ExecCondition (no repo)
        rpm("-i", "rpm")
        assert c.run(["systemctl", "is-enabled", UNIT], check=False).stdout.strip() == "enabled"
        wait_for("the start skipped by the ExecCondition",
                 lambda: "Skipped due to 'exec-condition'" in c.journal(UNIT, 50), timeout=30, c=c)
        assert show(c, "ActiveState")["ActiveState"] == "inactive"
        # configured and started by hand: converges
        edited = CONFIG + "# local edit: must survive upgrades\n"
        c.write_file("/etc/gitops-agent/config.yml", edited)
        c.run(["systemctl", "start", UNIT], timeout=120)
        assert c.read_file(MANAGED) == "converged by the packaged agent\n"
        pid1 = show(c, "MainPID")["MainPID"]
        # %postun of the upgrade: try-restart; the edited config (noreplace) is kept
        rpm("-U", "rpm2")
        assert c.run(["rpm", "-q", "gitops-agent"]).stdout.strip().startswith(f"gitops-agent-{V2}-1")
        wait_for("the agent restarted by the upgrade",
                 lambda: (s := show(c, "ActiveState", "MainPID"))["ActiveState"] == "active"
                 and s["MainPID"] not in ("0", pid1), timeout=60, c=c)
        assert c.read_file("/etc/gitops-agent/config.yml") == edited
        assert c.run(["systemctl", "is-enabled", UNIT], check=False).stdout.strip() == "enabled"
        # %preun on erase: stopped and disabled; the edited config saved as .rpmsave, state kept
        rpm("-e", "gitops-agent")
        assert show(c, "ActiveState")["ActiveState"] in ("inactive", "failed")
        assert c.run("pgrep -x gitops-agent", check=False).returncode == 1
        assert c.run(["systemctl", "is-enabled", UNIT], check=False).stdout.strip() != "enabled"
        assert not c.exists("/usr/bin/gitops-agent")
        assert c.read_file("/etc/gitops-agent/config.yml.rpmsave") == edited
        assert c.exists("/var/lib/gitops-agent/state.json")
    ct.timing(f"rpm scriptlets under systemd {time.monotonic() - t_all:.1f}s")


# --------------------------------------------------------------------------
# examples/cloud-init.yaml: the config it writes is one the agent accepts
# --------------------------------------------------------------------------
def test_cloud_init_example(tmp_path):
    yaml = pytest.importorskip("yaml")
    doc = yaml.safe_load((REPO / "examples/cloud-init.yaml").read_text())
    files = {f["path"]: f for f in doc["write_files"]}
    cfg = files["/run/gitops-agent-bootstrap/config.yml"]["content"]
    (tmp_path / "config.yml").write_text(cfg)
    binary = harness.agent_bin()
    if not binary.exists():
        pytest.fail(f"agent binary {binary} not found")
    # `status` parses the whole config (unknown keys, types, URLs) before reading the state dir
    p = subprocess.run([str(binary), "status", "--config", str(tmp_path / "config.yml"),
                        "--state-dir", str(tmp_path / "state")], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    cmds = [" ".join(c) if isinstance(c, list) else c for c in doc["runcmd"]]
    order = [next(i for i, c in enumerate(cmds) if k in c)
             for k in ("apt-get install", "/etc/gitops-agent/config.yml", "gitops-agent converge", "enable")]
    assert order == sorted(order), cmds
    assert files["/etc/gitops-agent/id_ed25519"]["permissions"] == "0600"
