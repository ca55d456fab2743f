"""The "systemd container" tier: a debootstrapped Debian bookworm booted with systemd-nspawn.

    from container import Container, build_rootfs
    tree = build_rootfs()                          # cached; first call debootstraps (~1 min)
    with Container(tree, agent=agent_bin(), binds=[Bind(pbdir, "/playbook")]) as c:
        c.run("systemctl is-active dbus")          # -> subprocess.CompletedProcess
        r = c.converge("/playbook")                # -> harness.Run (rc, tasks, raw JSON)

Rootfs: ``debootstrap --variant=minbase`` from the Debian archive this machine's apt uses
(``$GITOPS_TEST_DEBIAN_ARCHIVE`` overrides; debootstrap's own default when neither names one), with
ROOTFS_PACKAGES; fixed /etc/machine-id, empty fstab and sources.list, timers and gettys masked,
docs/man/locales dropped. Cached under ``$GITOPS_TEST_CACHE`` (default
``~/.cache/gitops-agent-tests``) as ``rootfs-<key>.tar.zst`` plus the unpacked tree
``rootfs-<key>/``; ``<key>`` hashes the recipe (suite, packages, and the source of the configure
step), so editing the recipe rebuilds. Containers share the unpacked tree read-only.

Container: ``systemd-nspawn -b --volatile=overlay`` (the tree is the read-only lower layer, all
writes go to a tmpfs that vanishes with the container), ``--register=no --keep-unit`` (the host
has no machined), in a network namespace of its own that has only ``lo``. Commands run through
``nsenter -t <container PID 1> -a`` with a clean environment. On exit (also after a failure) the
container is powered off (killed by PID if it does not stop in time), the network namespace and
temp dirs are removed. Names carry the test process's PID and a random part, so parallel workers
never collide; a janitor removes leftovers of killed runs (by that PID).

SAFETY: systemd is only ever booted by systemd-nspawn (own /dev, /sys, PID,
mount and network namespaces), never with the host's /dev, /sys or network namespace.
"""
from __future__ import annotations

import hashlib
import inspect
import json
import os
import pickle
import re
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402
from pkgrepo import cache_dir, file_lock  # noqa: E402

SUITE = "bookworm"
# minbase already has apt, passwd, dpkg, coreutils, ...; these are on top of it.
ROOTFS_PACKAGES = [
    "systemd", "systemd-sysv", "dbus",      # a booting systemd with a system bus
    "python3", "python3-apt",               # ansible-core -c local inside (its apt module needs python3-apt,
    "python3-debian",                       # its deb822_repository module python3-debian)
    "apt", "passwd", "openssh-client",      # apt/user/group modules, ssh-keygen
    "iproute2", "procps",                   # ip, ps/pgrep: debugging and network checks
    "git",                                  # the installed .deb pulling over file:// (git-upload-pack)
    # the VM tier (tests/lib/vm.py) boots the same tree as a machine: a kernel (cloud flavour:
    # virtio, small), udev (device units, /dev/disk/by-id) and the guest agent it is driven through;
    # inert in a container
    "linux-image-cloud-amd64", "udev", "qemu-guest-agent",
    "rpm",                                  # the .rpm's scriptlets run under a real systemd (test_package.py)
]
MASKED_UNITS = [
    "apt-daily.timer", "apt-daily-upgrade.timer", "dpkg-db-backup.timer", "e2scrub_all.timer",
    "e2scrub_reap.service", "fstrim.timer", "getty@tty1.service", "console-getty.service",
    "systemd-networkd-wait-online.service",
]
MACHINE_ID = "6761746573742d726f6f7466732d3031"  # fixed: no first-boot work, same on every boot
HOSTNAME = "gatest"
AGENT_PATH = "/usr/local/bin/gitops-agent"
CONTAINER_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
NAME_PREFIX = "gatest"
# where tests/system/conftest.py's make_container binds the test repositories and the output dir
APT_MOUNT = "/srv/gatest-apt"
SOLO_MOUNT = "/srv/gatest-solo_1.0_all.deb"
OUT_MOUNT = "/out"
LIB_MOUNT = "/usr/local/lib/gatest-tests-lib"   # tests/lib, always bound (for snapshot())

TIMINGS: list[str] = []   # every "=== timing: ..." line of this process
TIMING_SINK = None        # callable(line) replacing the print to stderr (tests/system/conftest.py sets it)


def _log(msg: str):
    print(msg, file=sys.stderr, flush=True)


def timing(line: str):
    line = f"=== timing: {line}"
    TIMINGS.append(line)
    (TIMING_SINK or _log)(line)


# --------------------------------------------------------------------------
# Debian archive, safe removal
# --------------------------------------------------------------------------
def debian_archive() -> str | None:
    """The Debian archive URL this machine's apt uses for SUITE ($GITOPS_TEST_DEBIAN_ARCHIVE overrides);
    None when there is none: debootstrap then uses its own default."""
    env = os.environ.get("GITOPS_TEST_DEBIAN_ARCHIVE")
    if env:
        return env
    files = [Path("/etc/apt/sources.list")] + sorted(Path("/etc/apt/sources.list.d").glob("*"))
    for f in files:
        try:
            text = f.read_text()
        except OSError:
            continue
        if f.suffix == ".sources":
            for stanza in re.split(r"\n\s*\n", text):
                fields = {}
                for line in stanza.splitlines():
                    if line.startswith("#") or ":" not in line:
                        continue
                    k, v = line.split(":", 1)
                    fields[k.strip().lower()] = v.split()
                if SUITE in fields.get("suites", []) and "deb" in fields.get("types", ["deb"]):
                    for uri in fields.get("uris", []):
                        if uri.startswith(("http://", "https://")) and "security" not in uri:
                            return uri.rstrip("/")
        else:
            for line in text.splitlines():
                toks = re.sub(r"\[[^\]]*\]", "", line.split("#", 1)[0]).split()
                if len(toks) >= 3 and toks[0] == "deb" and toks[2] == SUITE and toks[1].startswith("http"):
                    return toks[1].rstrip("/")
    return None


def _mounts_under(path: Path) -> list[str]:
    path = os.path.realpath(path)
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mp = line.split()[4].encode().decode("unicode_escape")
            if mp == path or mp.startswith(path + "/"):
                out.append(mp)
    return out


def safe_rmtree(path: Path):
    """rm -rf PATH, but first unmount anything below it (debootstrap mounts /proc and /sys in its
    target) and refuse if something stays mounted: never recurse into a host file system."""
    path = Path(path)
    if not path.exists():
        return
    for mp in sorted(_mounts_under(path), key=len, reverse=True):
        subprocess.run(["umount", "-l", mp], capture_output=True)
    left = _mounts_under(path)
    if left:
        raise RuntimeError(f"refusing to remove {path}: still mounted: {left}")
    shutil.rmtree(path, ignore_errors=True)


# --------------------------------------------------------------------------
# rootfs
# --------------------------------------------------------------------------
def _configure_rootfs(root: Path):
    """Turn a fresh debootstrap into the test image (part of the cache key: edit = rebuild)."""
    os.chmod(root, 0o755)
    (root / "etc/dpkg/dpkg.cfg.d/gatest-unsafe-io").unlink(missing_ok=True)
    (root / "etc/hostname").write_text(HOSTNAME + "\n")
    (root / "etc/hosts").write_text(f"127.0.0.1 localhost\n127.0.1.1 {HOSTNAME}\n::1 localhost ip6-localhost\n")
    (root / "etc/fstab").write_text("# empty: nspawn sets up the mounts\n")
    (root / "etc/machine-id").write_text(MACHINE_ID + "\n")
    dbus_id = root / "var/lib/dbus/machine-id"
    if dbus_id.is_symlink() or dbus_id.exists():
        dbus_id.unlink()
    dbus_id.parent.mkdir(parents=True, exist_ok=True)
    dbus_id.symlink_to("/etc/machine-id")
    # offline: only the local test repositories a test adds
    (root / "etc/apt/sources.list").write_text("")
    for unit in MASKED_UNITS:
        link = root / "etc/systemd/system" / unit
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to("/dev/null")
    # smaller image: caches, lists, docs
    for pattern in ("var/cache/apt/archives/*.deb", "var/cache/apt/*.bin", "var/lib/apt/lists/*",
                    "usr/share/doc/*", "usr/share/man/*", "usr/share/info/*", "usr/share/locale/*",
                    "var/log/bootstrap.log"):
        for p in root.glob(pattern):
            if p.name in ("partial", "lock"):
                continue
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                p.unlink()


def rootfs_recipe(extra_packages: list[str] = ()) -> dict:
    return {
        "suite": SUITE, "variant": "minbase", "arch": "amd64",
        "packages": sorted(set(ROOTFS_PACKAGES) | set(extra_packages)),
        "masked": MASKED_UNITS, "machine_id": MACHINE_ID, "hostname": HOSTNAME,
        "configure": inspect.getsource(_configure_rootfs),
        "format": 1,
    }


def rootfs_key(extra_packages: list[str] = ()) -> str:
    return hashlib.sha256(json.dumps(rootfs_recipe(extra_packages), sort_keys=True).encode()).hexdigest()[:16]


def _tar_create(tree: Path, out: Path):
    subprocess.run(["tar", "-C", str(tree), "--numeric-owner", "--xattrs", "--xattrs-include=*",
                    "-I", "zstd -T0 -3", "-cf", str(out), "."], check=True, capture_output=True)


def _tar_extract(tarball: Path, tree: Path):
    subprocess.run(["tar", "-C", str(tree), "--numeric-owner", "--xattrs", "--xattrs-include=*",
                    "-I", "zstd", "-xpf", str(tarball)], check=True, capture_output=True)


def build_rootfs(extra_packages: list[str] = (), *, archive: str | None = None) -> Path:
    """The unpacked bookworm tree (read-only lower layer for containers): built once per recipe.

    Order of preference: the unpacked cached tree; unpack of the cached tarball; debootstrap
    (then tar it into the cache). Concurrent callers (pytest -n 2) wait on a lock."""
    for tool, pkg in (("debootstrap", "debootstrap"), ("zstd", "zstd")):
        if not shutil.which(tool):
            raise FileNotFoundError(f"{tool} not found (apt-get install {pkg})")
    cache = cache_dir()
    key = rootfs_key(extra_packages)
    tree = cache / f"rootfs-{key}"
    tarball = cache / f"rootfs-{key}.tar.zst"
    if (tree / "usr/lib/systemd/systemd").exists():
        return tree
    with file_lock(cache / ".rootfs.lock"):
        if (tree / "usr/lib/systemd/systemd").exists():
            return tree
        safe_rmtree(tree)
        tmp = Path(tempfile.mkdtemp(prefix=f".rootfs-{key}.", dir=cache))
        try:
            os.chmod(tmp, 0o755)
            if tarball.exists():
                t0 = time.monotonic()
                _tar_extract(tarball, tmp)
                timing(f"rootfs unpack (warm: cached tarball) {time.monotonic() - t0:.1f}s")
            else:
                _debootstrap(tmp, extra_packages, archive or debian_archive(), tarball, key)
            os.rename(tmp, tree)
        except BaseException:
            safe_rmtree(tmp)
            raise
        _prune(cache, key)
    return tree


def _debootstrap(tmp: Path, extra_packages, archive: str | None, tarball: Path, key: str):
    cache = cache_dir()
    log = cache / f"debootstrap-{key}.log"
    pkgs = rootfs_recipe(extra_packages)["packages"]
    argv = ["debootstrap", "--variant=minbase", f"--include={','.join(pkgs)}",
            f"--cache-dir={cache / 'debs'}", SUITE, str(tmp)] + ([archive] if archive else [])
    (cache / "debs").mkdir(exist_ok=True)
    # dpkg without fsync while debootstrap installs (removed again by _configure_rootfs)
    unsafe = tmp / "etc/dpkg/dpkg.cfg.d/gatest-unsafe-io"
    unsafe.parent.mkdir(parents=True)
    for d in (tmp / "etc", tmp / "etc/dpkg", unsafe.parent):
        os.chmod(d, 0o755)
    unsafe.write_text("force-unsafe-io\n")
    t0 = time.monotonic()
    with open(log, "w") as lf:
        p = subprocess.run(argv, stdout=lf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    t1 = time.monotonic()
    if p.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
        raise RuntimeError(f"debootstrap failed (rc={p.returncode}), log {log}:\n{tail}")
    _configure_rootfs(tmp)
    t2 = time.monotonic()
    part = tarball.with_name(tarball.name + f".part{os.getpid()}")
    try:
        _tar_create(tmp, part)
        os.rename(part, tarball)
    finally:
        part.unlink(missing_ok=True)
    t3 = time.monotonic()
    size = tarball.stat().st_size / 1e6
    timing(f"rootfs build (cold: debootstrap from {archive or 'its default archive'}) total {t3 - t0:.1f}s: debootstrap {t1 - t0:.1f}s "
           f"configure {t2 - t1:.1f}s tar.zst {t3 - t2:.1f}s ({size:.0f} MB)")


def _prune(cache: Path, keep_key: str, max_age_days: float = 7):
    """Drop rootfs trees/tarballs of other recipes not used for MAX_AGE_DAYS (called under the lock)."""
    now = time.time()
    for p in cache.glob("rootfs-*"):
        if keep_key in p.name:
            continue
        try:
            if now - p.stat().st_atime > max_age_days * 86400 and now - p.stat().st_mtime > max_age_days * 86400:
                safe_rmtree(p) if p.is_dir() else p.unlink()
        except OSError:
            pass


# --------------------------------------------------------------------------
# container
# --------------------------------------------------------------------------
@dataclass
class Bind:
    """A bind mount into the container: SRC on the host, DEST inside (default: the same path)."""
    src: Path
    dest: str | None = None
    ro: bool = True

    def arg(self) -> str:
        src = os.path.realpath(self.src)
        dest = self.dest or str(self.src)
        for s in (src, dest):
            if ":" in s:
                raise ValueError(f"bind path with ':' is not supported by systemd-nspawn: {s}")
        return f"--bind-ro={src}:{dest}" if self.ro else f"--bind={src}:{dest}"


class ContainerError(RuntimeError):
    pass


class CommandError(subprocess.CalledProcessError):
    def __str__(self):
        def tail(s, n=30):
            s = s if isinstance(s, str) else (s or b"").decode(errors="replace")
            lines = (s or "").splitlines()
            return "\n".join(["    " + x for x in lines[-n:]])
        cmd = self.cmd if isinstance(self.cmd, str) else " ".join(shlex.quote(str(a)) for a in self.cmd)
        return (f"in container: {cmd}\n  exited {self.returncode}\n  --- stdout ---\n{tail(self.stdout)}"
                f"\n  --- stderr ---\n{tail(self.stderr)}")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def _children(pid: int) -> list[int]:
    try:
        return [int(x) for x in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        out = []
        for d in Path("/proc").iterdir():
            if d.name.isdigit():
                try:
                    if int((d / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                        out.append(int(d.name))
                except (OSError, IndexError, ValueError):
                    pass
        return out


def janitor():
    """Remove what killed test runs left: network namespaces, nspawn processes and temp dirs
    named gatest-<pid>-* whose <pid> (the test process that made them) is gone."""
    pat = re.compile(rf"^{NAME_PREFIX}-(\d+)-[0-9a-f]+$")
    p = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True)
    for line in p.stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        m = pat.match(name)
        if m and not _pid_alive(int(m.group(1))):
            _kill_nspawn_named(name)
            subprocess.run(["ip", "netns", "del", name], capture_output=True)
    tmp = Path(os.environ.get("TMPDIR", "/tmp"))
    # our temp dirs, and nspawn's mount propagation dirs (left when nspawn was SIGKILLed)
    for d in list(tmp.glob(f"{NAME_PREFIX}-*-*.*")) + list(Path("/run/systemd/nspawn/propagate").glob(f"{NAME_PREFIX}-*")):
        m = pat.match(d.name.split(".", 1)[0])
        if m and d.is_dir() and not _pid_alive(int(m.group(1))):
            safe_rmtree(d)
    for root in _cgroup_roots():
        for d in (root / NAME_PREFIX).glob(f"{NAME_PREFIX}-*"):
            m = pat.match(d.name)
            if m and not _pid_alive(int(m.group(1))):
                _remove_cgroup_tree(d)


def _kill_nspawn_named(name: str):
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            argv = (d / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"systemd-nspawn") and f"--machine={name}".encode() in argv:
            pid = int(d.name)
            for c in _children(pid):
                try:
                    os.kill(c, signal.SIGKILL)
                except OSError:
                    pass
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass


# --------------------------------------------------------------------------
# a cgroup of its own per container
# --------------------------------------------------------------------------
# nspawn with --keep-unit runs the container in the cgroup it was started in. Where the test runs
# outside any systemd unit (CI: every process in the root cgroup), two containers would then
# share one subtree: `payload/system.slice/<unit>` of both is the same directory, and each
# systemd sees the other's processes in its units (a `systemctl stop` in one killed the same
# unit in the other; `systemctl kill` failed with EIO on processes it could not see). So every
# container starts in a cgroup of its own, in each hierarchy systemd uses.
def _cgroup_roots() -> list[Path]:
    """The hierarchies systemd uses here: legacy/hybrid name=systemd (+ unified), or unified."""
    hybrid = [h for h in (Path("/sys/fs/cgroup/systemd"), Path("/sys/fs/cgroup/unified"))
              if (h / "cgroup.procs").exists()]
    if hybrid:
        return hybrid
    unified = Path("/sys/fs/cgroup")
    return [unified] if (unified / "cgroup.controllers").exists() else []


def _own_cgroups(name: str) -> list[Path]:
    dirs = []
    for root in _cgroup_roots():
        d = root / NAME_PREFIX / name
        d.mkdir(parents=True, exist_ok=True)
        dirs.append(d)
    return dirs


def _remove_cgroup_tree(d: Path):
    """rmdir a cgroup and its children, deepest first (cgroupfs only allows rmdir of each); a
    cgroup that still has processes stays (EBUSY)."""
    if not d.is_dir():
        return
    for dirpath, _dirnames, _files in os.walk(d, topdown=False):
        try:
            os.rmdir(dirpath)
        except OSError:
            pass


class Container:
    """A booted bookworm system. Use as a context manager (or start()/stop()).

    binds:    Bind(...) objects or (src, dest[, "ro"|"rw"]) tuples
    agent:    host path of the gitops-agent binary, bound read-only at /usr/local/bin/gitops-agent
              (with the gitops-agentd beside it, which `gitops-agent run` execs, next to it)
    ansible:  True (or a venv path): bind the test venv (target/test-venv, ansible-core) read-only at
              its own path, plus the Python it was made from if that is not under /usr, and the
              differential callback plugin dir; then ansible_playbook() works inside
    hostname: the container's hostname (default "gatest")
    """

    def __init__(self, rootfs: Path, binds=(), *, agent: Path | None = None, ansible: bool | Path = False,
                 hostname: str = HOSTNAME, boot_timeout: float = 120, stop_timeout: float = 30):
        self.rootfs = Path(rootfs)
        self.binds: list[Bind] = [Bind(Path(__file__).resolve().parent, LIB_MOUNT, ro=True)]
        for b in binds:
            if isinstance(b, Bind):
                self.binds.append(b)
            else:
                src, dest, *mode = b
                self.binds.append(Bind(Path(src), dest, ro=(mode or ["ro"])[0] != "rw"))
        if agent is not None:
            self.binds.append(Bind(Path(agent), AGENT_PATH, ro=True))
            daemon = Path(agent).with_name("gitops-agentd")
            if daemon.exists():
                self.binds.append(Bind(daemon, AGENT_PATH + "d", ro=True))
        self.agent = agent
        self.venv: Path | None = None
        if ansible:
            self.venv = Path(ansible) if not isinstance(ansible, bool) else harness.ansible_bin_dir().parent
            self.binds += self._ansible_binds(self.venv)
        self.hostname = hostname
        self.boot_timeout = boot_timeout
        self.stop_timeout = stop_timeout
        self.name = f"{NAME_PREFIX}-{os.getpid()}-{secrets.token_hex(4)}"
        self.netns: str | None = None
        self.workdir: Path | None = None
        self.proc: subprocess.Popen | None = None
        self.pid: int | None = None            # the container's PID 1 (host PID)
        self.boot_seconds: float | None = None
        self.state: str | None = None           # is-system-running after boot
        self.failed_units: list[str] = []
        self.cgroups: list[Path] = []          # the container's own cgroup in each hierarchy

    # -- ansible ------------------------------------------------------------
    def _ansible_binds(self, venv: Path) -> list[Bind]:
        if not (venv / "bin" / "ansible-playbook").exists():
            raise FileNotFoundError(f"no ansible-playbook in venv {venv} (run tests/run-all.sh once)")
        binds = [Bind(venv, str(venv), ro=True), Bind(harness.CALLBACK_DIR, str(harness.CALLBACK_DIR), ro=True)]
        cfg = venv / "pyvenv.cfg"
        home = None
        if cfg.exists():
            for line in cfg.read_text().splitlines():
                if line.split("=", 1)[0].strip() == "home":
                    home = Path(line.split("=", 1)[1].strip())
        if home and not str(home).startswith(("/usr/", "/bin")):
            # e.g. a pyenv build: bind its prefix (<prefix>/bin/python3) at the same path
            binds.append(Bind(home.parent, str(home.parent), ro=True))
        return binds

    # -- lifecycle ----------------------------------------------------------
    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()
        return False

    def start(self):
        for tool in ("systemd-nspawn", "nsenter", "ip"):
            if not shutil.which(tool):
                raise FileNotFoundError(f"{tool} not found")
        if not (self.rootfs / "usr/lib/systemd/systemd").exists():
            raise ContainerError(f"{self.rootfs} is not a bootable tree")
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self):
        self.workdir = Path(tempfile.mkdtemp(prefix=f"{self.name}.", dir=os.environ.get("TMPDIR", "/tmp")))
        # the network namespace: loopback only
        subprocess.run(["ip", "netns", "add", self.name], check=True, capture_output=True)
        self.netns = self.name
        subprocess.run(["ip", "-n", self.name, "link", "set", "lo", "up"], check=True, capture_output=True)
        # nspawn itself runs inside the namespace (nsenter --net execs it: the PID stays nspawn's),
        # so the sysfs it mounts shows the namespace's devices (only lo); --network-namespace-path
        # alone would leave the host's interfaces visible (read-only) in the container's /sys/class/net.
        argv = ["nsenter", f"--net=/run/netns/{self.name}", "--",
                "systemd-nspawn", f"--directory={self.rootfs}", "--volatile=overlay", "--boot",
                "--register=no", "--keep-unit", f"--machine={self.name}", f"--hostname={self.hostname}",
                f"--network-namespace-path=/run/netns/{self.name}", "--console=read-only",
                "--link-journal=no", "--resolv-conf=off", "--timezone=off"]
        argv += [b.arg() for b in self.binds]
        env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
               # the tree is shared read-only by parallel containers: no exclusive image lock
               "SYSTEMD_NSPAWN_LOCK": "0", "LANG": "C.UTF-8"}
        t0 = time.monotonic()
        self.console_log = self.workdir / "console.log"
        self.cgroups = _own_cgroups(self.name)
        procs = [str(d / "cgroup.procs") for d in self.cgroups]

        def join_own_cgroups():     # in the child, before exec: nsenter and then nspawn start there
            for f in procs:
                with open(f, "w") as fh:
                    fh.write(str(os.getpid()))

        with open(self.console_log, "wb") as log:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                         env=env, start_new_session=True, preexec_fn=join_own_cgroups)
        self.argv = argv
        deadline = t0 + self.boot_timeout
        self.pid = self._find_pid1(deadline)
        # systemd answers on its private socket, then boot finishes
        while True:
            self._check_alive()
            if subprocess.run(self._nsenter(["test", "-S", "/run/systemd/private"]),
                              capture_output=True, env=self._env()).returncode == 0:
                break
            if time.monotonic() > deadline:
                raise ContainerError(f"{self.name}: systemd did not come up\n{self.console_tail()}")
            time.sleep(0.05)
        p = subprocess.run(self._nsenter(["systemctl", "is-system-running", "--wait"]), capture_output=True,
                           text=True, env=self._env(), timeout=max(1.0, deadline - time.monotonic()))
        self.state = p.stdout.strip()
        self.boot_seconds = time.monotonic() - t0
        if self.state not in ("running", "degraded"):
            raise ContainerError(f"{self.name}: is-system-running={self.state!r} {p.stderr}\n{self.console_tail()}")
        if self.state == "degraded":
            p = self.run("systemctl --failed --no-legend --plain --no-pager", check=False)
            self.failed_units = [ln.split()[0] for ln in p.stdout.splitlines() if ln.strip()]
        timing(f"container boot {self.boot_seconds:.2f}s ({self.state}"
               + (f", failed: {' '.join(self.failed_units)}" if self.failed_units else "") + f") {self.name}")

    def _find_pid1(self, deadline: float) -> int:
        my_ns = os.readlink(f"/proc/{self.proc.pid}/ns/pid")
        while True:
            self._check_alive()
            for c in _children(self.proc.pid):
                try:
                    if os.readlink(f"/proc/{c}/ns/pid") != my_ns and \
                            Path(f"/proc/{c}/comm").read_text().strip() == "systemd":
                        return c
                except OSError:
                    pass
            if time.monotonic() > deadline:
                raise ContainerError(f"{self.name}: container PID 1 not found\n{self.console_tail()}")
            time.sleep(0.02)

    def _check_alive(self):
        if self.proc.poll() is not None:
            raise ContainerError(f"{self.name}: systemd-nspawn exited with {self.proc.returncode}\n"
                                 f"$ {' '.join(self.argv)}\n{self.console_tail()}")

    def console_tail(self, n: int = 40) -> str:
        try:
            lines = self.console_log.read_text(errors="replace").splitlines()
        except (OSError, AttributeError):
            return "(no console log)"
        return "--- console (tail) ---\n" + "\n".join(lines[-n:])

    def stop(self):
        """Power off (SIGTERM to nspawn = poweroff request), kill by PID after stop_timeout,
        remove the network namespace and the work dir. Idempotent."""
        t0 = time.monotonic()
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGTERM)
                self.proc.wait(timeout=self.stop_timeout)
            except subprocess.TimeoutExpired:
                _log(f"{self.name}: did not power off in {self.stop_timeout}s, killing\n{self.console_tail(15)}")
                if self.pid and _pid_alive(self.pid):
                    try:
                        os.kill(self.pid, signal.SIGKILL)   # PID 1 of the namespace: takes all with it
                    except OSError:
                        pass
                self.proc.kill()
                self.proc.wait(timeout=30)
            _log(f"{self.name}: stopped in {time.monotonic() - t0:.2f}s")
        if self.pid and _pid_alive(self.pid):
            try:
                os.kill(self.pid, signal.SIGKILL)
            except OSError:
                pass
        # nspawn removes it on a clean exit, not when killed
        safe_rmtree(Path("/run/systemd/nspawn/propagate") / self.name)
        for d in self.cgroups:
            _remove_cgroup_tree(d)
        self.cgroups = []
        if self.netns:
            subprocess.run(["ip", "netns", "del", self.netns], capture_output=True)
            self.netns = None
        if self.workdir:
            keep = os.environ.get("GITOPS_TEST_KEEP_CONSOLE")
            if keep:
                shutil.copy(self.console_log, Path(keep) / f"{self.name}.console.log")
            safe_rmtree(self.workdir)
            self.workdir = None

    # -- commands -----------------------------------------------------------
    def _nsenter(self, argv: list[str]) -> list[str]:
        return ["nsenter", "-t", str(self.pid), "-a", "--"] + argv

    @staticmethod
    def _env(extra: dict | None = None) -> dict:
        env = {"PATH": CONTAINER_PATH, "LANG": "C.UTF-8", "HOME": "/root", "TERM": "dumb",
               "DEBIAN_FRONTEND": "noninteractive", "SYSTEMD_PAGER": "", "SYSTEMD_COLORS": "0"}
        env.update(extra or {})
        return env

    def run(self, cmd: str | list, check: bool = True, *, input: str | bytes | None = None,
            timeout: float = 600, env: dict | None = None, cwd: str | None = None,
            text: bool = True) -> subprocess.CompletedProcess:
        """Run CMD inside (a string goes to sh -c) as root with a clean environment
        (PATH, LANG=C.UTF-8, HOME=/root, DEBIAN_FRONTEND=noninteractive + ENV)."""
        if self.pid is None:
            raise ContainerError("container not started")
        argv = ["sh", "-c", cmd] if isinstance(cmd, str) else [str(a) for a in cmd]
        if cwd:
            argv = ["env", "-C", cwd, "--"] + argv
        if isinstance(input, str) and not text:
            input = input.encode()
        p = subprocess.run(self._nsenter(argv), input=input, capture_output=True, text=text,
                           timeout=timeout, env=self._env(env),
                           stdin=None if input is not None else subprocess.DEVNULL)
        if check and p.returncode != 0:
            raise CommandError(p.returncode, cmd, p.stdout, p.stderr)
        return subprocess.CompletedProcess(cmd, p.returncode, p.stdout, p.stderr)

    def read_bytes(self, path: str) -> bytes:
        return self.run(["cat", "--", path], text=False).stdout

    def read_file(self, path: str) -> str:
        return self.read_bytes(path).decode()

    def write_file(self, path: str, content: str | bytes, mode: int = 0o644):
        """Write PATH inside (parents created), then chmod MODE."""
        data = content.encode() if isinstance(content, str) else content
        self.run(["sh", "-c", 'mkdir -p -- "$(dirname -- "$1")" && cat > "$1" && chmod "$2" -- "$1"',
                  "sh", path, f"{mode:o}"], input=data, text=False)

    def host_path(self, path: str) -> Path:
        """PATH inside, seen from the host: /proc/<PID 1>/root/PATH, for plain reads. Not for
        os.path.realpath() (it resolves the /proc magic link to the host's /) nor for PATHs with
        absolute symlinks (resolved against the host's root): use run()/read_file()/snapshot()."""
        return Path(f"/proc/{self.pid}/root") / path.lstrip("/")

    def snapshot(self, path: str, exact: bool = False) -> dict[str, dict]:
        """harness.snapshot() (or snapshot_exact()) of the tree at PATH, taken inside by the
        container's python3 with tests/lib bound read-only: comparable with host-side snapshots."""
        fn = "snapshot_exact" if exact else "snapshot"
        code = (f"import sys, pickle; sys.path.insert(0, {LIB_MOUNT!r}); import harness; "
                f"sys.stdout.buffer.write(pickle.dumps(harness.{fn}(sys.argv[1])))")
        return pickle.loads(self.run(["python3", "-c", code, path], text=False).stdout)

    def exists(self, path: str) -> bool:
        return self.run(["test", "-e", path], check=False).returncode == 0

    def systemctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return self.run(["systemctl", "--no-pager", *args], check=check)

    def is_active(self, unit: str) -> str:
        return self.run(["systemctl", "is-active", unit], check=False).stdout.strip()

    def journal(self, unit: str | None = None, lines: int = 100) -> str:
        argv = ["journalctl", "--no-pager", "-o", "short-monotonic", "-n", str(lines)]
        if unit:
            argv += ["-u", unit]
        return self.run(argv, check=False).stdout

    def add_apt_repo(self, repo, mount_path: str, name: str = "gatest", update: bool = True):
        """REPO (pkgrepo.AptRepo) must be bound at MOUNT_PATH; writes the sources list, apt-get update."""
        self.write_file(f"/etc/apt/sources.list.d/{name}.list", repo.sources_line(mount_path))
        if update:
            self.run("apt-get update -q")

    # -- the agent and ansible-core inside ----------------------------------
    def converge(self, playbook_dir: str, extra_args=(), *, playbook: str | None = None,
                 host_name: str | None = None, check: bool = False, diff: bool = False,
                 fmt_json: bool = True, env: dict | None = None, timeout: float = 600) -> harness.Run:
        """gitops-agent converge --playbook-dir PLAYBOOK_DIR (a path inside) [--format json].

        Returns harness.Run: rc, stdout, stderr, raw (parsed JSON report), tasks (normalised as in
        the differential tier: name/status/changed/...), seconds."""
        if self.agent is None:
            raise ContainerError("no agent bound: Container(..., agent=<path>)")
        argv = [AGENT_PATH, "converge", "--playbook-dir", playbook_dir]
        if playbook:
            argv += ["--playbook", playbook]
        if host_name:
            argv += ["--host-name", host_name]
        if check:
            argv.append("--check")
        if diff:
            argv.append("--diff")
        if fmt_json:
            argv += ["--format", "json"]
        argv += [str(a) for a in extra_args]
        t0 = time.monotonic()
        p = self.run(argv, check=False, env=env, timeout=timeout)
        dt = time.monotonic() - t0
        raw, tasks = None, []
        if fmt_json:
            try:
                raw = json.loads(p.stdout)
            except ValueError:
                raw = None
            tasks = _agent_tasks(raw)
        return harness.Run("agent", argv, p.returncode, p.stdout, p.stderr, tasks, raw, dt)

    def ansible_playbook(self, playbook_dir: str, extra_args=(), *, playbook: str = "site.yml",
                         check: bool = False, diff: bool = False, env: dict | None = None,
                         timeout: float = 900) -> harness.Run:
        """ansible-playbook -c local -i localhost, PLAYBOOK inside, from the bound test venv
        (Container(..., ansible=True)); results through the differential callback (harness.Run)."""
        if self.venv is None:
            raise ContainerError("no venv bound: Container(..., ansible=True)")
        out = f"/tmp/difftest-{time.monotonic_ns()}.json"
        argv = [str(self.venv / "bin" / "ansible-playbook"), "-c", "local", "-i", "localhost,", playbook]
        if check:
            argv.append("--check")
        if diff:
            argv.append("--diff")
        argv += [str(a) for a in extra_args]
        aenv = {
            "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0", "ANSIBLE_RETRY_FILES_ENABLED": "0",
            "ANSIBLE_LOCALHOST_WARNING": "0", "ANSIBLE_INVENTORY_UNPARSED_WARNING": "0",
            "ANSIBLE_DEPRECATION_WARNINGS": "0", "ANSIBLE_PIPELINING": "1",
            "ANSIBLE_CALLBACK_PLUGINS": str(harness.CALLBACK_DIR), "ANSIBLE_CALLBACKS_ENABLED": "difftest",
            "ANSIBLE_PYTHON_INTERPRETER": str(self.venv / "bin" / "python3"),
            "ANSIBLE_HOME": "/root/.ansible", "DIFFTEST_OUT": out,
            "PATH": f"{self.venv / 'bin'}:{CONTAINER_PATH}",
        }
        aenv.update(env or {})
        t0 = time.monotonic()
        p = self.run(argv, check=False, env=aenv, cwd=playbook_dir, timeout=timeout)
        dt = time.monotonic() - t0
        raw, tasks = None, []
        r = self.run(["cat", out], check=False)
        if r.returncode == 0:
            raw = json.loads(r.stdout)
            self.run(["rm", "-f", out])
            for t in raw.get("tasks", []):
                if t.get("include") or t.get("meta") or t.get("resolved_action") in harness.SKIP_ACTIONS:
                    continue
                tasks.append({"name": t["name"], "status": t["status"], "changed": t["changed"],
                              "handler": t["handler"], "display": t["display"], "action": t["action"],
                              "items": t.get("items")})
        return harness.Run("ansible", argv, p.returncode, p.stdout, p.stderr, tasks, raw, dt)


def _agent_tasks(raw) -> list[dict]:
    """The agent's JSON report -> task entries, normalised like harness.run_agent does."""
    tasks = []
    if isinstance(raw, dict):
        for t in raw.get("tasks") or []:
            if t.get("status") == "not-run" or t.get("module") in harness.SKIP_ACTIONS:
                continue
            name = harness.ROLE_PREFIX.sub("", t.get("name") or t.get("module") or "")
            tasks.append({"name": name, "status": t.get("status"), "changed": bool(t.get("changed")),
                          "handler": bool(t.get("handler")), "display": t.get("name"),
                          "action": t.get("module"), "items": t.get("items"),
                          "via": t.get("via"),
                          "where": f"{t.get('file')}:{t.get('line')}"})
    return tasks


# --------------------------------------------------------------------------
# by hand:  python3 tests/lib/container.py build | boot [CMD...]
# --------------------------------------------------------------------------
def _main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("build", "boot"):
        print("usage: container.py build | boot [CMD...]   (root; GITOPS_TEST_CACHE sets the cache dir)")
        return 2
    janitor()
    t0 = time.monotonic()
    tree = build_rootfs()
    print(f"rootfs {tree} ({time.monotonic() - t0:.1f}s)")
    if argv[0] == "boot":
        with Container(tree, agent=harness.agent_bin() if harness.agent_bin().exists() else None) as c:
            cmd = argv[1:] or ["systemctl", "--failed", "--no-pager"]
            p = c.run(cmd, check=False)
            sys.stdout.write(p.stdout)
            sys.stderr.write(p.stderr)
            return p.returncode
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
