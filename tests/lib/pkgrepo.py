"""Tiny test packages and local package repositories (APT flat repo, RPM repo).

Everything the tests install is built here, named with the ``gatest-`` prefix, byte-reproducible
(SOURCE_DATE_EPOCH, fixed modes and mtimes) and cached by a hash of the package definitions and of
this file under ``$GITOPS_TEST_CACHE`` (default ``~/.cache/gitops-agent-tests``). Safe to call from
several pytest-xdist workers at once: the build runs under a file lock and the result is renamed
into place.

APT (``build_apt_repo()`` -> ``AptRepo``), usable as ``deb [trusted=yes] file:<repo.path> ./``:

  gatest-hello 1.0, 2.0  /usr/share/gatest-hello/VERSION ("1.0\\n" / "2.0\\n"),
                         /usr/bin/gatest-hello (prints its version, then sleeps forever),
                         /lib/systemd/system/gatest-hello.service (Type=simple, WantedBy=multi-user.target;
                         the package neither enables nor starts it), conffile /etc/gatest-hello.conf
                         (content differs between 1.0 and 2.0: an upgrade over a locally modified
                         conffile makes dpkg ask unless --force-confold/--force-confdef is given)
  gatest-lib 1.0         /usr/share/gatest-lib/VERSION
  gatest-app 1.0         Depends: gatest-lib (>= 1.0); /usr/share/gatest-app/VERSION, /usr/bin/gatest-app
  gatest-broken 1.0      postinst exits 1 (dpkg leaves it half-configured, apt-get fails)
  gatest-solo 1.0        /usr/share/gatest-solo/README; NOT in the repository index: its .deb is at
                         ``repo.solo_deb`` for local ``deb:`` / ``apt install ./file.deb`` installs

RPM (``build_rpm_repo()`` -> ``RpmRepo``), noarch, ``AutoReqProv: no``, createrepo_c metadata:

  gatest-hello 1.0-1, 2.0-1   same files as the .deb (unit in /usr/lib/systemd/system,
                              /etc/gatest-hello.conf as %config(noreplace))
  gatest-lib 1.0-1, gatest-app 1.0-1 (Requires: gatest-lib >= 1.0), gatest-broken 1.0-1 (its lua %pre fails)

  dnf: ``repo.dnf_argv(installroot)`` gives the full option list (a scratch root that reads no
  host configuration).
"""
from __future__ import annotations

import contextlib
import fcntl
import gzip
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

SOURCE_DATE_EPOCH = 1700000000
PREFIX = "gatest-"
_THIS_FILE = Path(__file__).resolve()


def cache_dir() -> Path:
    d = Path(os.environ.get("GITOPS_TEST_CACHE") or Path.home() / ".cache" / "gitops-agent-tests")
    d.mkdir(parents=True, exist_ok=True)
    return d


@contextlib.contextmanager
def file_lock(path: Path):
    """Exclusive flock on PATH (created if missing), released on exit (and by the kernel on death)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _key(*parts) -> str:
    h = hashlib.sha256()
    h.update(_THIS_FILE.read_bytes())
    for p in parts:
        h.update(json.dumps(p, sort_keys=True, default=str).encode())
    return h.hexdigest()[:16]


def cached_build(kind: str, key: str, build) -> tuple[Path, bool]:
    """Return (dir, built_now). BUILD(tmpdir) fills a fresh temp dir that is renamed to the
    cache entry ``<cache>/<kind>-<key>``; concurrent callers wait on a lock and reuse it."""
    root = cache_dir()
    final = root / f"{kind}-{key}"
    if (final / ".complete").exists():
        return final, False
    with file_lock(root / f".{kind}.lock"):
        if (final / ".complete").exists():
            return final, False
        if final.exists():  # half-finished leftover of a killed run
            shutil.rmtree(final)
        tmp = Path(tempfile.mkdtemp(prefix=f".{kind}-{key}.", dir=root))
        try:
            os.chmod(tmp, 0o755)
            build(tmp)
            (tmp / ".complete").write_text(time.strftime("%Y-%m-%dT%H:%M:%S\n"))
            os.rename(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return final, True


def _run(argv, **kw):
    p = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL, **kw)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, argv))} failed (rc={p.returncode}):\n{p.stdout}\n{p.stderr}")
    return p


# --------------------------------------------------------------------------
# package definitions (shared by the .deb and .rpm builders)
# --------------------------------------------------------------------------
HELLO_SCRIPT = """#!/bin/sh
# gatest-hello {version}: a do-nothing daemon for service tests
echo "gatest-hello {version} running (config: $(grep -v '^#' /etc/gatest-hello.conf 2>/dev/null | tr '\\n' ' '))"
exec sleep infinity
"""

HELLO_UNIT = """[Unit]
Description=gatest-hello test daemon ({version})

[Service]
Type=simple
ExecStart=/usr/bin/gatest-hello

[Install]
WantedBy=multi-user.target
"""

HELLO_CONF = """# gatest-hello configuration (shipped by gatest-hello {version})
greeting=hello from {version}
"""

APP_SCRIPT = """#!/bin/sh
# gatest-app: prints the versions of itself and its library
echo "gatest-app $(cat /usr/share/gatest-app/VERSION) with gatest-lib $(cat /usr/share/gatest-lib/VERSION)"
"""


@dataclass
class Pkg:
    name: str
    version: str
    depends: list[str] = field(default_factory=list)     # "name (>= 1.0)" in Debian syntax
    files: dict[str, tuple[int, str]] = field(default_factory=dict)  # path -> (mode, content)
    conffiles: list[str] = field(default_factory=list)
    postinst: str | None = None
    description: str = ""
    in_index: bool = True

    @property
    def deb_name(self) -> str:
        return f"{self.name}_{self.version}_all.deb"


def _hello(version: str) -> Pkg:
    return Pkg(
        "gatest-hello", version,
        files={
            f"/usr/share/gatest-hello/VERSION": (0o644, f"{version}\n"),
            "/usr/bin/gatest-hello": (0o755, HELLO_SCRIPT.format(version=version)),
            "/lib/systemd/system/gatest-hello.service": (0o644, HELLO_UNIT.format(version=version)),
            "/etc/gatest-hello.conf": (0o644, HELLO_CONF.format(version=version)),
        },
        conffiles=["/etc/gatest-hello.conf"],
        description="test daemon with a systemd unit and a conffile")


def packages() -> list[Pkg]:
    return [
        _hello("1.0"),
        _hello("2.0"),
        Pkg("gatest-lib", "1.0", files={"/usr/share/gatest-lib/VERSION": (0o644, "1.0\n")},
            description="test library (a dependency of gatest-app)"),
        Pkg("gatest-app", "1.0", depends=["gatest-lib (>= 1.0)"],
            files={"/usr/share/gatest-app/VERSION": (0o644, "1.0\n"),
                   "/usr/bin/gatest-app": (0o755, APP_SCRIPT)},
            description="test application depending on gatest-lib"),
        Pkg("gatest-broken", "1.0", files={"/usr/share/gatest-broken/VERSION": (0o644, "1.0\n")},
            postinst="#!/bin/sh\necho 'gatest-broken: postinst fails on purpose' >&2\nexit 1\n",
            description="test package whose postinst fails"),
        Pkg("gatest-solo", "1.0", files={"/usr/share/gatest-solo/README": (0o644, "gatest-solo 1.0\n")},
            description="test package installed from a local .deb file", in_index=False),
    ]


# --------------------------------------------------------------------------
# APT
# --------------------------------------------------------------------------
@dataclass
class AptRepo:
    path: Path                  # the flat repository: *.deb, Packages, Packages.gz, Release
    debs: dict[str, Path]       # "name_version" -> .deb (indexed ones and gatest-solo)
    solo_deb: Path              # gatest-solo_1.0_all.deb, outside the index
    built_now: bool = False

    def sources_line(self, mount_path: str | os.PathLike | None = None) -> str:
        """The sources.list line; MOUNT_PATH is where the repo is seen (e.g. a bind inside a container)."""
        return f"deb [trusted=yes] file:{mount_path or self.path} ./\n"

    def deb(self, name: str, version: str) -> Path:
        return self.debs[f"{name}_{version}"]


def _touch_tree(root: Path, epoch: int = SOURCE_DATE_EPOCH):
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            os.utime(os.path.join(dirpath, n), (epoch, epoch), follow_symlinks=False)
    os.utime(root, (epoch, epoch))


def build_deb(pkg: Pkg, out_dir: Path, work: Path) -> Path:
    r = work / f"{pkg.name}_{pkg.version}"
    (r / "DEBIAN").mkdir(parents=True)
    for path, (mode, content) in pkg.files.items():
        f = r / path.lstrip("/")
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(content)
        os.chmod(f, mode)
    ctl = [f"Package: {pkg.name}", f"Version: {pkg.version}", "Architecture: all",
           "Maintainer: gitops-agent tests <tests@example.invalid>", "Installed-Size: 1"]
    if pkg.depends:
        ctl.append("Depends: " + ", ".join(pkg.depends))
    ctl += ["Section: misc", "Priority: optional",
            f"Description: {pkg.name} - gitops-agent test package", f" {pkg.description or pkg.name}."]
    (r / "DEBIAN" / "control").write_text("\n".join(ctl) + "\n")
    if pkg.conffiles:
        (r / "DEBIAN" / "conffiles").write_text("".join(c + "\n" for c in pkg.conffiles))
    if pkg.postinst:
        (r / "DEBIAN" / "postinst").write_text(pkg.postinst)
        os.chmod(r / "DEBIAN" / "postinst", 0o755)
    for dirpath, dirnames, _ in os.walk(r):
        for d in dirnames:
            os.chmod(os.path.join(dirpath, d), 0o755)
    os.chmod(r, 0o755)
    for f in (r / "DEBIAN").iterdir():
        if f.name != "postinst":
            os.chmod(f, 0o644)
    _touch_tree(r)
    out = out_dir / pkg.deb_name
    env = dict(os.environ, SOURCE_DATE_EPOCH=str(SOURCE_DATE_EPOCH))
    _run(["dpkg-deb", "--root-owner-group", "-Zxz", "--build", str(r), str(out)], env=env)
    os.utime(out, (SOURCE_DATE_EPOCH, SOURCE_DATE_EPOCH))
    return out


def _build_apt(tmp: Path):
    repo = tmp / "repo"
    repo.mkdir()
    with tempfile.TemporaryDirectory(prefix="gatest-deb.") as w:
        for pkg in packages():
            build_deb(pkg, repo if pkg.in_index else tmp, Path(w))
    env = dict(os.environ, SOURCE_DATE_EPOCH=str(SOURCE_DATE_EPOCH), LC_ALL="C")
    p = _run(["dpkg-scanpackages", "--multiversion", ".", "/dev/null"], cwd=repo, env=env)
    (repo / "Packages").write_text(p.stdout)
    with open(repo / "Packages.gz", "wb") as raw:
        with gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=9, mtime=SOURCE_DATE_EPOCH) as gz:
            gz.write(p.stdout.encode())
    if shutil.which("apt-ftparchive"):
        date = time.strftime("%a, %d %b %Y %H:%M:%S UTC", time.gmtime(SOURCE_DATE_EPOCH))
        p = _run(["apt-ftparchive", "-o", f"APT::FTPArchive::Release::Date={date}",
                  "-o", "APT::FTPArchive::Release::Origin=gatest",
                  "-o", "APT::FTPArchive::Release::Label=gatest", "release", "."], cwd=repo, env=env)
        (repo / "Release").write_text(p.stdout)
    for f in repo.iterdir():
        os.chmod(f, 0o644)
        os.utime(f, (SOURCE_DATE_EPOCH, SOURCE_DATE_EPOCH))


def build_apt_repo() -> AptRepo:
    """Build (or reuse) the APT test repository. Needs dpkg-deb and dpkg-scanpackages (dpkg-dev);
    the Release file needs apt-ftparchive (apt-utils) and is left out without it."""
    for tool in ("dpkg-deb", "dpkg-scanpackages"):
        if not shutil.which(tool):
            raise FileNotFoundError(f"{tool} not found (apt-get install dpkg-dev)")
    pk = [p.__dict__ for p in packages()]
    d, built = cached_build("aptrepo", _key("apt", pk, bool(shutil.which("apt-ftparchive"))), _build_apt)
    repo = d / "repo"
    debs = {f.name.rsplit("_", 1)[0]: f for f in sorted(repo.glob("*.deb"))}
    solo = d / "gatest-solo_1.0_all.deb"
    debs["gatest-solo_1.0"] = solo
    return AptRepo(path=repo, debs=debs, solo_deb=solo, built_now=built)


# --------------------------------------------------------------------------
# RPM
# --------------------------------------------------------------------------
def _rpm_req(dep: str) -> str:
    # "gatest-lib (>= 1.0)" -> "gatest-lib >= 1.0"
    return dep.replace("(", "").replace(")", "")


def _spec(pkg: Pkg) -> str:
    files = {}
    for path, v in pkg.files.items():
        if path.startswith("/lib/systemd/system/"):
            path = "/usr" + path  # RPM distributions keep units under /usr/lib
        files[path] = v
    lines = [f"Name: {pkg.name}", f"Version: {pkg.version}", "Release: 1",
             f"Summary: {pkg.name} - gitops-agent test package", "License: MIT",
             "BuildArch: noarch", "AutoReqProv: no"]
    lines += [f"Requires: {_rpm_req(d)}" for d in pkg.depends]
    lines += ["", "%description", pkg.description or pkg.name, "", "%install"]
    for i, (path, (mode, content)) in enumerate(sorted(files.items())):
        lines.append(f"mkdir -p %{{buildroot}}{os.path.dirname(path)}")
        lines.append(f"cat > %{{buildroot}}{path} <<'GATEST_EOF_{i}'")
        lines.append(content.replace("%", "%%").rstrip("\n"))
        lines.append(f"GATEST_EOF_{i}")
        lines.append(f"chmod {mode:o} %{{buildroot}}{path}")
    if pkg.postinst:
        # a lua scriptlet: a shell one would add a Requires on /bin/sh, which a scratch root lacks
        lines += ["", "%pre -p <lua>", 'error("gatest-broken: %%pre fails on purpose")']
    lines += ["", "%files"]
    owned_dirs = sorted({os.path.dirname(p) for p in files if p.startswith("/usr/share/")})
    lines += [f"%dir {d}" for d in owned_dirs]
    for path, (mode, _) in sorted(files.items()):
        cf = "/usr" + path if path.startswith("/lib/") else path
        attr = f"%attr({mode:o},root,root) "
        if path in pkg.conffiles or cf in pkg.conffiles:
            lines.append(f"%config(noreplace) {attr}{path}")
        else:
            lines.append(f"{attr}{path}")
    return "\n".join(lines) + "\n"


def _build_rpm(tmp: Path):
    repo = tmp / "repo"
    repo.mkdir()
    env = dict(os.environ, SOURCE_DATE_EPOCH=str(SOURCE_DATE_EPOCH), LC_ALL="C")
    with tempfile.TemporaryDirectory(prefix="gatest-rpm.") as w:
        w = Path(w)
        for pkg in packages():
            if not pkg.in_index:
                continue
            spec = w / f"{pkg.name}-{pkg.version}.spec"
            spec.write_text(_spec(pkg))
            _run(["rpmbuild", "-bb", "--quiet",
                  "--define", f"_topdir {w}/build", "--define", f"_rpmdir {repo}",
                  "--define", "_build_name_fmt %%{NAME}-%%{VERSION}-%%{RELEASE}.%%{ARCH}.rpm",
                  "--define", "use_source_date_epoch_as_buildtime 1",
                  "--define", "clamp_mtime_to_source_date_epoch 1",
                  "--define", "_buildhost gatest", "--define", "_binary_payload w9.gzdio",
                  str(spec)], env=env)
    for f in repo.glob("*.rpm"):
        os.chmod(f, 0o644)
        os.utime(f, (SOURCE_DATE_EPOCH, SOURCE_DATE_EPOCH))
    _run(["createrepo_c", "-q", "--no-database", "--revision", str(SOURCE_DATE_EPOCH), "--set-timestamp-to-revision",
          "--simple-md-filenames", str(repo)], env=env)


@dataclass
class RpmRepo:
    path: Path
    rpms: dict[str, Path]       # "name-version" -> .rpm
    built_now: bool = False

    def dnf_argv(self, installroot: str | os.PathLike, *, repo_id: str = "gatest") -> list[str]:
        """dnf with only this repository, into INSTALLROOT (host side: a scratch root)."""
        return ["dnf", "-y", "-q", f"--installroot={installroot}", "--releasever=12",
                "--setopt=reposdir=/nonexistent", f"--setopt=cachedir={installroot}/var/cache/dnf",
                "--setopt=install_weak_deps=False", "--nogpgcheck",
                f"--repofrompath={repo_id},file://{self.path}", f"--repo={repo_id}"]


def build_rpm_repo() -> RpmRepo:
    """Build (or reuse) the RPM test repository. Needs rpmbuild (rpm) and createrepo_c (createrepo-c)."""
    for tool, pkg in (("rpmbuild", "rpm"), ("createrepo_c", "createrepo-c")):
        if not shutil.which(tool):
            raise FileNotFoundError(f"{tool} not found (apt-get install {pkg})")
    pk = [p.__dict__ for p in packages()]
    d, built = cached_build("rpmrepo", _key("rpm", pk), _build_rpm)
    repo = d / "repo"
    rpms = {f.name.rsplit("-", 1)[0]: f for f in sorted(repo.glob("*.rpm"))}
    return RpmRepo(path=repo, rpms=rpms, built_now=built)
