"""Shared helpers for the pytest tiers (differential, bad input).

Nothing here knows about pytest; conftest.py wires these into fixtures.
"""
from __future__ import annotations

import contextlib
import difflib
import json
import os
import re
import shlex
import stat
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import fixtures

TESTS_DIR = Path(__file__).resolve().parent.parent
REPO = TESTS_DIR.parent
DIFF_DIR = TESTS_DIR / "differential"
PLAYBOOKS_DIR = DIFF_DIR / "playbooks"
CALLBACK_DIR = DIFF_DIR / "callback_plugins"


# --------------------------------------------------------------------------
# locations of the tools under test
# --------------------------------------------------------------------------
def agent_bin() -> Path:
    return Path(os.environ.get("GITOPS_AGENT_BIN", REPO / "target" / "debug" / "gitops-agent"))


def ansible_bin_dir() -> Path:
    d = os.environ.get("ANSIBLE_BIN_DIR")
    if d:
        return Path(d)
    for cand in (REPO / "target" / "test-venv" / "bin", Path(sys.executable).parent):
        if (cand / "ansible-playbook").exists():
            return cand
    return Path("/usr/bin")


def oracle_only() -> bool:
    """GITOPS_DIFF_ORACLE_ONLY=1: the "agent" side is a second ansible-playbook run.

    Used to validate the playbooks themselves (they pass under ansible-core and are
    deterministic) without an agent binary."""
    return os.environ.get("GITOPS_DIFF_ORACLE_ONLY", "") not in ("", "0", "false", "no")


# --------------------------------------------------------------------------
# tree snapshots
# --------------------------------------------------------------------------
BACKUP_RE = re.compile(r"^(?P<base>.+)\.\d+\.\d{4}-\d{2}-\d{2}@\d{2}:\d{2}:\d{2}~$")


def _norm_bytes(data: bytes, root: str) -> bytes:
    return data.replace(root.encode(), b"ROOT")


def _norm_str(s: str, root: str) -> str:
    return s.replace(root, "ROOT")


def snapshot(root: str | os.PathLike, normalize_backups: bool = True) -> dict[str, dict]:
    """Everything observable about a tree, keyed by path relative to root.

    Contents and symlink targets have the root prefix replaced by ROOT; backup files
    (name.<pid>.<YYYY-MM-DD@HH:MM:SS>~) get a normalised name."""
    root = os.path.realpath(str(root))
    entries: dict[str, dict] = {}
    inodes: dict[tuple[int, int], list[str]] = {}
    raw: list[tuple[str, dict]] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames.sort()
        names = [(n, True) for n in dirnames] + [(n, False) for n in sorted(filenames)]
        if dirpath == root:
            names.insert(0, ("", None))
        # A clone's git directory holds times and inode numbers (index, reflogs): its existence is
        # compared, its contents are not (the work tree and the registered commit ids are).
        dirnames[:] = [d for d in dirnames if d != ".git"]
        for name, _ in names:
            full = os.path.join(dirpath, name) if name else dirpath
            rel = os.path.relpath(full, root)
            st = os.lstat(full)
            e: dict = {
                "mode": oct(st.st_mode),
                "uid": st.st_uid,
                "gid": st.st_gid,
            }
            if stat.S_ISLNK(st.st_mode):
                e["type"] = "symlink"
                e["target"] = _norm_str(os.readlink(full), root)
            elif stat.S_ISDIR(st.st_mode):
                e["type"] = "dir"
            elif stat.S_ISREG(st.st_mode):
                e["type"] = "file"
                e["nlink"] = st.st_nlink
                with open(full, "rb") as f:
                    e["content"] = _norm_bytes(f.read(), root)
                if st.st_nlink > 1:
                    inodes.setdefault((st.st_dev, st.st_ino), []).append(rel)
                    e["_ino"] = (st.st_dev, st.st_ino)
            else:
                e["type"] = "other:" + oct(stat.S_IFMT(st.st_mode))
            raw.append((rel, e))
    # hard link groups (paths relative to root sharing an inode)
    for rel, e in raw:
        ino = e.pop("_ino", None)
        if ino is not None:
            e["hardlinks"] = sorted(inodes[ino])
    # backup name normalisation
    backups: dict[str, list[tuple[str, dict]]] = {}
    for rel, e in raw:
        m = BACKUP_RE.match(os.path.basename(rel)) if normalize_backups else None
        if m:
            key = os.path.join(os.path.dirname(rel), m.group("base") + ".<pid>.<timestamp>~")
            backups.setdefault(key, []).append((rel, e))
        else:
            entries[rel] = e
    for key, lst in backups.items():
        lst.sort(key=lambda x: (x[1].get("content", b""), x[0]))
        for i, (rel, e) in enumerate(lst):
            e["backup_of"] = rel
            entries[key if i == 0 else f"{key}#{i}"] = e
    return entries


def snapshot_exact(root: str | os.PathLike) -> dict[str, dict]:
    """Byte-for-byte snapshot including mtimes (for "left unchanged" checks)."""
    root = os.path.realpath(str(root))
    snap = snapshot(root, normalize_backups=False)
    for rel in snap:
        st = os.lstat(os.path.join(root, rel))
        snap[rel]["mtime_ns"] = st.st_mtime_ns
        snap[rel]["ino"] = st.st_ino
    return snap


def _show_content(b: bytes) -> list[str]:
    try:
        return b.decode().splitlines(keepends=False)
    except UnicodeDecodeError:
        return [repr(b)]


def tree_diff(a: dict, b: dict, a_label="ansible", b_label="agent", ignore=()) -> list[str]:
    """Human readable list of differences between two snapshots (empty == equal)."""
    out: list[str] = []
    for rel in sorted(set(a) | set(b)):
        if rel in ignore:
            continue
        if rel not in b:
            out.append(f"  only in {a_label}: {rel} ({a[rel]['type']})")
            continue
        if rel not in a:
            out.append(f"  only in {b_label}: {rel} ({b[rel]['type']})")
            continue
        ea, eb = a[rel], b[rel]
        for k in sorted((set(ea) | set(eb)) - {"content", "backup_of"}):
            if ea.get(k) != eb.get(k):
                out.append(f"  {rel}: {k} {a_label}={ea.get(k)!r} {b_label}={eb.get(k)!r}")
        if ea.get("content") != eb.get("content"):
            ca, cb = ea.get("content") or b"", eb.get("content") or b""
            out.append(f"  {rel}: content differs ({len(ca)} vs {len(cb)} bytes):")
            d = list(difflib.unified_diff(_show_content(ca), _show_content(cb), a_label, b_label, lineterm="", n=2))
            if not d:  # differ only in trailing newline etc.
                d = [f"    {a_label}: {ca[-80:]!r}", f"    {b_label}: {cb[-80:]!r}"]
            out.extend("    " + line for line in d[:60])
            if len(d) > 60:
                out.append(f"    ... ({len(d) - 60} more diff lines)")
    return out


# --------------------------------------------------------------------------
# playbook markers:  "# differential: idempotent no-check tags=a,b ..."
# --------------------------------------------------------------------------
@dataclass
class Markers:
    idempotent: bool = False
    check: bool = True
    expect_fail: bool = False
    check_expect_fail: bool = False
    tags: str | None = None
    skip_tags: str | None = None
    extra_vars: list[str] = field(default_factory=list)
    inventory: str | None = None
    host: str = "localhost"
    ansible_cfg: bool = False
    # the agent runs with its bridge to ansible-core on (`ansible_modules: auto`, the python
    # of ANSIBLE_BIN_DIR); ansible_force: modules it has that still go through ansible-core
    ansible_modules: bool = False
    # the bridge is on only for collection filter/test plugins: no task need run via ansible
    ansible_plugins: bool = False
    ansible_force: list[str] = field(default_factory=list)
    ansible_python: str | None = None       # default: ANSIBLE_BIN_DIR's python3
    git_fixture: bool = False
    pip_fixture: bool = False
    http_server: bool = False
    notes: list[str] = field(default_factory=list)


def read_markers(site: Path) -> Markers:
    m = Markers()
    for line in site.read_text().splitlines():
        line = line.strip()
        if not line.startswith("# differential:"):
            continue
        for tok in shlex.split(line.split(":", 1)[1]):
            if tok == "idempotent":
                m.idempotent = True
            elif tok == "no-check":
                m.check = False
            elif tok == "expect-fail":
                m.expect_fail = True
            elif tok == "check-expect-fail":
                m.check_expect_fail = True
            elif tok.startswith("tags="):
                m.tags = tok[5:]
            elif tok.startswith("skip-tags="):
                m.skip_tags = tok[10:]
            elif tok.startswith("extra-vars="):
                m.extra_vars.append(tok[len("extra-vars="):])
            elif tok.startswith("inventory="):
                m.inventory = tok[len("inventory="):]
            elif tok.startswith("host="):
                m.host = tok[len("host="):]
            elif tok == "ansible-cfg":
                m.ansible_cfg = True
            elif tok == "ansible-modules":
                m.ansible_modules = True
            elif tok == "ansible-plugins":
                m.ansible_modules = True
                m.ansible_plugins = True
            elif tok.startswith("ansible-force="):
                m.ansible_modules = True
                m.ansible_force += [n for n in tok[len("ansible-force="):].split(",") if n]
            elif tok == "git-fixture":
                m.git_fixture = True
            elif tok == "pip-fixture":
                m.pip_fixture = True
            elif tok == "http-server":
                m.http_server = True
            else:
                m.notes.append(tok)
    return m


# --------------------------------------------------------------------------
# a local HTTP server (get_url, uri, unarchive): tests/lib/httpserver.py
# --------------------------------------------------------------------------
@contextlib.contextmanager
def http_server(directory: Path, log: Path | None = None):
    """Serves `directory` on 127.0.0.1 (a free port) while the block runs; yields its base URL
    (`http://127.0.0.1:PORT`). Requests are appended to `log` if given. Stopped by PID."""
    argv = [sys.executable, str(Path(__file__).resolve().parent / "httpserver.py"), str(directory)]
    if log is not None:
        argv.append(str(log))
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    try:
        line = p.stdout.readline()
        if not line.startswith("PORT "):
            raise RuntimeError(f"http server did not start: {line!r}")
        yield f"http://127.0.0.1:{int(line.split()[1])}"
    finally:
        p.terminate()
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        p.stdout.close()


# --------------------------------------------------------------------------
# running the tools
# --------------------------------------------------------------------------
@dataclass
class Run:
    tool: str
    argv: list[str]
    rc: int
    stdout: str
    stderr: str
    tasks: list[dict]          # normalised task entries (name, status, changed, ...)
    raw: dict | None           # parsed JSON document (callback output / agent --format json)
    seconds: float

    def pairs(self) -> list[tuple[str, str, bool]]:
        return [(t["name"], t["status"], t["changed"]) for t in self.tasks]

    def changed_count(self) -> int:
        return sum(1 for t in self.tasks if t["changed"])

    def describe(self) -> str:
        return (f"$ {' '.join(shlex.quote(a) for a in self.argv)}\n  rc={self.rc} ({self.seconds:.2f}s)\n"
                f"  --- stdout (tail) ---\n{_tail(self.stdout)}\n  --- stderr (tail) ---\n{_tail(self.stderr)}")


def _tail(s: str, n: int = 40) -> str:
    lines = s.splitlines()
    if len(lines) > n:
        lines = [f"... ({len(lines) - n} lines cut)"] + lines[-n:]
    return "\n".join("    " + x for x in lines)


SKIP_ACTIONS = {
    "include_tasks", "ansible.builtin.include_tasks", "ansible.legacy.include_tasks",
    "include_role", "ansible.builtin.include_role", "ansible.legacy.include_role",
    "import_tasks", "ansible.builtin.import_tasks", "import_role", "ansible.builtin.import_role",
    "meta", "ansible.builtin.meta", "ansible.legacy.meta",
}

ROLE_PREFIX = re.compile(r"^[A-Za-z0-9_.\-]+ : ")


def _empty_cfg(tmp: Path) -> Path:
    p = tmp / "ansible.cfg"
    if not p.exists():
        p.write_text("[defaults]\n")
    return p


def ansible_env(tmp: Path) -> dict[str, str]:
    env = dict(os.environ)
    bindir = ansible_bin_dir()
    env.update({
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_RETRY_FILES_ENABLED": "0",
        "ANSIBLE_LOCALHOST_WARNING": "0",
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "0",
        "ANSIBLE_CALLBACK_PLUGINS": str(CALLBACK_DIR),
        "ANSIBLE_CALLBACKS_ENABLED": "difftest",
        "ANSIBLE_STDOUT_CALLBACK": "default",
        "ANSIBLE_LOCAL_TEMP": str(tmp / "ansible-local-tmp"),
        "ANSIBLE_REMOTE_TEMP": str(tmp / "ansible-remote-tmp"),
        "ANSIBLE_HOME": str(tmp / "ansible-home"),
        "ANSIBLE_PYTHON_INTERPRETER": str(bindir / "python3") if (bindir / "python3").exists() else "auto_silent",
        "ANSIBLE_DEPRECATION_WARNINGS": "0",
        "ANSIBLE_PIPELINING": "1",
        "ANSIBLE_CONFIG": str(_empty_cfg(tmp)),
        "PATH": f"{bindir}:{env.get('PATH', '/usr/bin:/bin')}",
    })
    return env


def _fixtures(markers: Markers, root: Path):
    if markers.git_fixture:
        fixtures.git_source(Path(f"{root}-src.git"), Path(f"{root}-link.git"))
    if markers.pip_fixture:
        fixtures.wheels(Path(f"{root}-wheels"))


def run_ansible(pbdir: Path, root: Path, tmp: Path, *, check=False, diff=False, markers: Markers | None = None,
                extra: list[str] = (), tags=None, skip_tags=None, timeout=600) -> Run:
    markers = markers or Markers()
    _fixtures(markers, root)
    out = tmp / f"ansible-{time.monotonic_ns()}.json"
    # ansible-pull's inventory: `localhost,`, or an inventory file limited to this host.
    if markers.inventory:
        inventory = ["-i", markers.inventory, "-l", markers.host]
    elif markers.ansible_cfg:
        inventory = ["-l", markers.host]  # the playbook directory's ansible.cfg names the inventory
    else:
        inventory = ["-i", f"{markers.host},"]
    argv = [str(ansible_bin_dir() / "ansible-playbook"), "-c", "local", *inventory, "site.yml",
            "-e", f"root={root}"]
    for ev in list(markers.extra_vars) + list(extra):
        argv += ["-e", ev]
    tags = tags if tags is not None else markers.tags
    skip_tags = skip_tags if skip_tags is not None else markers.skip_tags
    if tags:
        argv += ["--tags", tags]
    if skip_tags:
        argv += ["--skip-tags", skip_tags]
    if check:
        argv.append("--check")
    if diff:
        argv.append("--diff")
    env = ansible_env(tmp)
    env["DIFFTEST_OUT"] = str(out)
    if markers.ansible_cfg:
        del env["ANSIBLE_CONFIG"]  # ansible reads ./ansible.cfg (the playbook directory's)
    t0 = time.monotonic()
    p = subprocess.run(argv, cwd=pbdir, env=env, capture_output=True, text=True, timeout=timeout,
                       stdin=subprocess.DEVNULL)
    dt = time.monotonic() - t0
    raw = None
    tasks: list[dict] = []
    if out.exists():
        raw = json.loads(out.read_text())
        out.unlink()
        for t in raw["tasks"]:
            if t.get("include") or t.get("meta") or t.get("resolved_action") in SKIP_ACTIONS:
                continue
            tasks.append({"name": t["name"], "status": t["status"], "changed": t["changed"],
                          "handler": t["handler"], "display": t["display"], "action": t["action"],
                          "items": t.get("items")})
    return Run("ansible", argv, p.returncode, p.stdout, p.stderr, tasks, raw, dt)


def run_agent(pbdir: Path, root: Path, *, check=False, diff=False, markers: Markers | None = None,
              extra: list[str] = (), tags=None, skip_tags=None, fmt_json=True, timeout=300,
              playbook="site.yml") -> Run:
    markers = markers or Markers()
    _fixtures(markers, root)
    argv = [str(agent_bin()), "converge", "--playbook-dir", str(pbdir), "--playbook", playbook,
            "--host-name", markers.host, "-e", f"root={root}"]
    if markers.inventory:
        argv += ["--inventory", markers.inventory]
    if markers.ansible_modules:
        argv += ["--ansible-modules", "auto", "--ansible-python",
                 markers.ansible_python or str(ansible_bin_dir() / "python3")]
        for name in markers.ansible_force:
            argv += ["--ansible-module-force", name]
    for ev in list(markers.extra_vars) + list(extra):
        argv += ["-e", ev]
    tags = tags if tags is not None else markers.tags
    skip_tags = skip_tags if skip_tags is not None else markers.skip_tags
    if tags:
        argv += ["--tags", tags]
    if skip_tags:
        argv += ["--skip-tags", skip_tags]
    if check:
        argv.append("--check")
    if diff:
        argv.append("--diff")
    if fmt_json:
        argv += ["--format", "json"]
    t0 = time.monotonic()
    p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    dt = time.monotonic() - t0
    raw = None
    tasks: list[dict] = []
    if fmt_json:
        try:
            raw = json.loads(p.stdout)
        except ValueError:
            raw = None
        if isinstance(raw, dict):
            for t in raw.get("tasks") or []:
                if t.get("status") == "not-run" or t.get("module") in SKIP_ACTIONS:
                    continue
                name = t.get("name") or t.get("module") or ""
                name = ROLE_PREFIX.sub("", name)
                tasks.append({"name": name, "status": t.get("status"), "changed": bool(t.get("changed")),
                              "handler": bool(t.get("handler")), "display": t.get("name"),
                              "action": t.get("module"), "items": t.get("items"),
                              "via": t.get("via"),
                              "where": f"{t.get('file')}:{t.get('line')}"})
    return Run("agent", argv, p.returncode, p.stdout, p.stderr, tasks, raw, dt)


def ansible_pairs(run: Run) -> list[tuple[str, str, bool]]:
    return [(ROLE_PREFIX.sub("", n), s, c) for (n, s, c) in run.pairs()]


def list_diff(a: list, b: list, a_label="ansible", b_label="agent") -> list[str]:
    if a == b:
        return []
    fa = [f"{n!s:60} {s:8} changed={c}" for (n, s, c) in a]
    fb = [f"{n!s:60} {s:8} changed={c}" for (n, s, c) in b]
    return ["  " + x for x in difflib.unified_diff(fa, fb, a_label, b_label, lineterm="", n=100)]
