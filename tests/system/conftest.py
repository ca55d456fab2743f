"""Fixtures of the systemd-container tier (see tests/README.md, "Systemd container tier").

Session fixtures (once per pytest worker; the builds themselves are cached on disk and locked,
so parallel workers build once):
  rootfs      Path of the unpacked bookworm tree (container.build_rootfs())
  apt_repo    pkgrepo.AptRepo: flat repo of the gatest-* .debs
  rpm_repo    pkgrepo.RpmRepo: createrepo_c repo of the gatest-* .rpms
  agent_binary  Path of the agent under test (fails if not built)
  packages    {"deb", "deb2", "rpm", "rpm2"}: the agent under test packaged by packaging/build.sh
              (versions V1 and V2; cached in target/test-packages by a key of binary + packaging)
Per test:
  make_container(**kw)  factory -> started container.Container; stopped after the test
  container             make_container() with the defaults below
  out_dir               host dir bound read-write at /out in `container`

Default binds of make_container / container (read-only unless said):
  APT_MOUNT  (/srv/gatest-apt)        the APT repo (add it inside with c.add_apt_repo(apt_repo, APT_MOUNT))
  SOLO_MOUNT (/srv/gatest-solo_1.0_all.deb)  the local .deb
  /usr/local/bin/gitops-agent         the agent under test, if GITOPS_AGENT_BIN exists
  /out (read-write)                   out_dir
make_container(ansible=True) also binds the test venv (ansible-core) for c.ansible_playbook().

Missing prerequisites (not root, no systemd-nspawn/debootstrap/...) skip these tests with the
reason, except under CI=true, where they fail.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "lib"))

import container as ct  # noqa: E402
import harness  # noqa: E402
import pkgrepo  # noqa: E402

from container import APT_MOUNT, OUT_MOUNT, SOLO_MOUNT  # noqa: E402
REPO = Path(__file__).resolve().parents[2]
BUILD_SH = REPO / "packaging" / "build.sh"
V1 = "0.1.0"            # the packages' versions (V2: the upgrade of test_package.py)
V2 = "0.1.0+test2"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def unavailable(reason: str):
    """Skip (fail under CI=true) for a missing prerequisite."""
    if IN_CI:
        pytest.fail(f"system tier prerequisite missing (CI=true, so this fails instead of skipping): {reason}",
                    pytrace=False)
    pytest.skip(reason)


def require_tools(*tools: str, hint: str = ""):
    if os.geteuid() != 0:
        unavailable("the systemd container tier needs root")
    missing = [t for t in tools if not shutil.which(t)]
    if missing:
        unavailable(f"missing {', '.join(missing)}{' (' + hint + ')' if hint else ''}")


# timing lines go straight to the terminal (also from xdist workers), not into captured output
@pytest.fixture(scope="session", autouse=True)
def _timing_sink(request):
    capman = request.config.pluginmanager.getplugin("capturemanager")
    boots: list[float] = []

    def sink(line: str):
        if line.startswith("=== timing: container boot "):
            boots.append(float(line.split()[4].rstrip("s")))
        if capman is not None:
            with capman.global_and_fixture_disabled():
                sys.stderr.write(f"\n{line}\n")
                sys.stderr.flush()
        else:
            sys.stderr.write(f"{line}\n")

    old = ct.TIMING_SINK
    ct.TIMING_SINK = sink
    yield
    if boots:
        worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        sink(f"=== timing: container boots ({worker}) n={len(boots)} mean {statistics.mean(boots):.2f}s "
             f"max {max(boots):.2f}s")
    ct.TIMING_SINK = old


@pytest.fixture(scope="session")
def rootfs() -> Path:
    require_tools("debootstrap", "systemd-nspawn", "nsenter", "ip", "zstd", "tar",
                  hint="apt-get install debootstrap systemd-container iproute2 zstd")
    ct.janitor()
    return ct.build_rootfs()


@pytest.fixture(scope="session")
def apt_repo() -> pkgrepo.AptRepo:
    require_tools("dpkg-deb", "dpkg-scanpackages", hint="apt-get install dpkg-dev")
    return pkgrepo.build_apt_repo()


@pytest.fixture(scope="session")
def rpm_repo() -> pkgrepo.RpmRepo:
    require_tools("rpmbuild", "createrepo_c", "dnf", hint="apt-get install rpm createrepo-c dnf")
    return pkgrepo.build_rpm_repo()


@pytest.fixture(scope="session")
def agent_binary() -> Path:
    """The agent under test (GITOPS_AGENT_BIN, default target/debug/gitops-agent); fails if not built."""
    p = harness.agent_bin()
    if not p.exists():
        pytest.fail(f"agent binary {p} not found; build it (cargo build) or set GITOPS_AGENT_BIN")
    return p


# --------------------------------------------------------------------------
# the .deb and .rpm (once per session, shared by xdist workers through a lock and a key)
# --------------------------------------------------------------------------
# the packaging/build.sh runs of the `packages` fixture (part of the cache key)
PACKAGE_BUILDS = (["--version", V1], ["--version", V2])


def _packaging_key(binary: Path) -> str:
    h = hashlib.sha256()
    for b in (binary, binary.with_name("gitops-agentd")):
        st = b.stat() if b.exists() else None
        h.update(f"{b} {st and st.st_size} {st and st.st_mtime_ns} {PACKAGE_BUILDS}".encode())
    for p in sorted((REPO / "packaging").rglob("*")) + [REPO / "systemd/gitops-agent.service",
                                                        REPO / "agent/src/cli.rs"]:
        if p.is_file() and "target" not in p.parts:
            h.update(str(p).encode())
            h.update(p.read_bytes())
    return h.hexdigest()[:16]


@pytest.fixture(scope="session")
def packages() -> dict[str, Path]:
    """{"deb": v1 .deb, "deb2": v2 .deb, "rpm": v1 .rpm, "rpm2": v2 .rpm} built by packaging/build.sh."""
    require_tools("dpkg-deb", "rpmbuild", "strip", "cargo", hint="apt-get install dpkg rpm binutils")
    binary = harness.agent_bin()
    if not binary.exists():
        pytest.fail(f"agent binary {binary} not found; build it (cargo build) or set GITOPS_AGENT_BIN")
    out = REPO / "target" / "test-packages"
    key = _packaging_key(binary)
    done = out / f".complete-{key}"
    with pkgrepo.file_lock(out / ".lock"):
        if not done.exists():
            for p in out.glob("*"):
                if p.name != ".lock":
                    shutil.rmtree(p) if p.is_dir() else p.unlink()
            t0 = time.monotonic()
            env = dict(os.environ, GITOPS_PKG_OUT=str(out))
            for args in PACKAGE_BUILDS:
                p = subprocess.run([str(BUILD_SH), "--binary", str(binary), "--fast", *args], env=env,
                                   capture_output=True, text=True, stdin=subprocess.DEVNULL)
                if p.returncode != 0:
                    pytest.fail(f"packaging/build.sh {' '.join(args)} failed:\n{p.stdout}\n{p.stderr}")
            ct.timing(f"packages built (2 .deb, 2 .rpm, debug binary) {time.monotonic() - t0:.1f}s")
            done.write_text("")
    arch = subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True).stdout.strip()
    res = {"deb": out / f"gitops-agent_{V1}_{arch}.deb", "deb2": out / f"gitops-agent_{V2}_{arch}.deb",
           "rpm": out / f"gitops-agent-{V1}-1.{os.uname().machine}.rpm",
           "rpm2": out / f"gitops-agent-{V2}-1.{os.uname().machine}.rpm"}
    for k, p in res.items():
        assert p.exists(), f"{k}: {p} missing after build.sh"
    return res


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


@pytest.fixture
def out_dir(tmp_path) -> Path:
    d = tmp_path / "out"
    d.mkdir()
    os.chmod(d, 0o777)
    return d


@pytest.fixture
def make_container(request, rootfs, apt_repo, out_dir):
    """Factory: make_container(binds=[...], agent=..., ansible=False, hostname=...) -> started
    Container with the default binds (APT repo, local .deb, agent if built, /out) plus BINDS."""
    started: list[ct.Container] = []

    def make(binds=(), *, agent: Path | None | bool = True, defaults: bool = True, **kw) -> ct.Container:
        all_binds = []
        if defaults:
            all_binds += [ct.Bind(apt_repo.path, APT_MOUNT), ct.Bind(apt_repo.solo_deb, SOLO_MOUNT),
                          ct.Bind(out_dir, OUT_MOUNT, ro=False)]
        all_binds += list(binds)
        if agent is True:
            agent = harness.agent_bin() if harness.agent_bin().exists() else None
        c = ct.Container(rootfs, all_binds, agent=agent or None, **kw)
        started.append(c)
        c.start()
        return c

    yield make
    failed = getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed
    for c in reversed(started):
        if failed and c.pid:
            try:
                sys.stderr.write(f"--- {c.name}: journal (tail) ---\n{c.journal(lines=60)}\n{c.console_tail(20)}\n")
            except Exception as e:  # the container may be gone already
                sys.stderr.write(f"--- {c.name}: no journal ({e})\n")
        c.stop()


@pytest.fixture
def container(make_container) -> ct.Container:
    return make_container()
