"""Converge comparison: each allowlisted entry in two fresh, identical Debian 12 containers
(tests/lib/container.py: booted systemd-nspawn, a network namespace with only lo), one converged by
ansible-playbook -c local -i localhost, (the test venv's ansible-core), one by the agent; then the
state is compared and each side is run a second time.

Packages: the ones the manifest lists for the entry are fetched ON THE HOST from Debian's archive
(apt-get --download-only, resolved against the container image's dpkg status) into a local flat
repository, cached under target/realworld/apt/<key>; inside, the only APT source is that
repository. Both containers get a policy-rc.d that exits 101 (maintainer scripts start nothing).
"""
from __future__ import annotations

import difflib
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "lib"))

import container as ct  # noqa: E402
import corpus  # noqa: E402
import snapshot_inside  # noqa: E402

PULL_MOUNT = "/srv/pull"
APT_MOUNT = "/srv/gatest-apt"
MARKER = "/run/gatest-realworld-marker"
APT_DIR = corpus.OUT / "apt"
SNAPSHOT_CODE = (HERE / "snapshot_inside.py").read_text()


class Prereq(Exception):
    """What the converge tier needs is missing here (not root, no systemd-nspawn, ...)."""


def check_prereqs():
    if os.geteuid() != 0:
        raise Prereq("converge needs root (systemd-nspawn)")
    for tool in ("systemd-nspawn", "nsenter", "ip", "debootstrap", "dpkg-scanpackages", "apt-get"):
        if not shutil.which(tool):
            raise Prereq(f"{tool} not found (tests/setup-host.sh installs it)")


# --------------------------------------------------------------------------
# the local APT repository of an entry
# --------------------------------------------------------------------------
def apt_repo(packages: list[str], rootfs: Path) -> Path:
    """A flat repository holding PACKAGES and what they pull in beyond the image (cached)."""
    key = hashlib.sha256(json.dumps([sorted(packages), ct.rootfs_key()]).encode()).hexdigest()[:16]
    repo = APT_DIR / key
    if (repo / ".complete").exists():
        return repo
    shutil.rmtree(repo, ignore_errors=True)
    (repo / "partial").mkdir(parents=True)
    if packages:
        p = subprocess.run(
            ["apt-get", "install", "--download-only", "-y", "-q",
             "-o", f"Dir::State::status={rootfs / 'var/lib/dpkg/status'}",
             "-o", f"Dir::Cache::archives={repo}", "-o", "Debug::NoLocking=true", *packages],
            capture_output=True, text=True, stdin=subprocess.DEVNULL,
            env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
        if p.returncode != 0:
            raise RuntimeError(f"apt-get --download-only {' '.join(packages)} failed:\n{p.stdout[-2000:]}\n{p.stderr[-2000:]}")
    shutil.rmtree(repo / "partial", ignore_errors=True)
    (repo / "lock").unlink(missing_ok=True)
    idx = subprocess.run(["dpkg-scanpackages", "--multiversion", ".", "/dev/null"], cwd=repo,
                         capture_output=True, text=True, check=True)
    (repo / "Packages").write_text(idx.stdout)
    (repo / ".complete").write_text(" ".join(packages) + "\n")
    return repo


# --------------------------------------------------------------------------
# one side
# --------------------------------------------------------------------------
def _prepare(c: ct.Container, preinstall: list[str]):
    c.write_file("/usr/sbin/policy-rc.d", "#!/bin/sh\nexit 101\n", mode=0o755)
    c.write_file("/etc/apt/sources.list.d/gatest.list", f"deb [trusted=yes] file:{APT_MOUNT} ./\n")
    c.run("apt-get update -q")
    if preinstall:
        c.run(["apt-get", "install", "-y", "-q", *preinstall], timeout=900)
    c.run(["sh", "-c", f"sleep 0.05; touch {MARKER}; sleep 0.05"])


def _snapshot(c: ct.Container) -> dict:
    p = c.run(["python3", "-", MARKER], input=SNAPSHOT_CODE, timeout=600)
    return json.loads(p.stdout)


def _first_failure(run) -> str:
    raw = run.raw if isinstance(run.raw, dict) else {}
    if raw.get("error"):
        return str(raw["error"]).splitlines()[0][:300]
    for t in raw.get("tasks") or []:
        if t.get("status") in ("failed", "error", "unreachable"):
            msg = t.get("msg") or (t.get("result") or {}).get("msg") if isinstance(t.get("result"), dict) else t.get("msg")
            where = f" ({t['file']}:{t['line']})" if t.get("file") else ""
            return f"task '{t.get('name')}'{where} {t.get('status')}: {str(msg or '')[:250]}"
    for t in run.tasks:
        if t.get("status") in ("failed", "error", "unreachable"):
            return f"task '{t.get('name')}' {t.get('status')}"
    tail = (run.stderr.strip() or run.stdout.strip()).splitlines()
    return f"rc={run.rc}: " + (tail[-1][:200] if tail else "(no output)")


def bridge_on() -> bool:
    """GITOPS_REALWORLD_BRIDGE=1 (run.py --ansible-modules): the agent runs with its bridge to
    ansible-core on, with the test venv's python bound into its container."""
    return os.environ.get("GITOPS_REALWORLD_BRIDGE", "") not in ("", "0", "false", "no")


def task_counts(run) -> dict:
    """Tasks of a run that ran (not skipped), native or through ansible-core (`via: ansible`)."""
    ran = [t for t in run.tasks if t.get("status") not in ("skipped", None)]
    via = sum(1 for t in ran if t.get("via") == "ansible")
    return {"native": len(ran) - via, "via_ansible": via}


def side(tool: str, rootfs: Path, pulldir: Path, repo: Path, playbook: str, preinstall: list[str]) -> dict:
    """Boot, converge twice with TOOL, snapshot after the first run."""
    binds = [ct.Bind(pulldir, PULL_MOUNT, ro=True), ct.Bind(repo, APT_MOUNT, ro=True)]
    kw = {"agent": _agent()} if tool == "agent" else {"ansible": True}
    extra: list[str] = []
    if tool == "agent" and bridge_on():
        kw["ansible"] = True
    res: dict = {"tool": tool}
    # as ansible-pull run by root from a login shell or cron (debops reads $USER)
    env = {"USER": "root", "LOGNAME": "root"}
    with ct.Container(rootfs, binds=binds, **kw) as c:
        _prepare(c, preinstall)
        for n in (1, 2):
            if tool == "agent":
                if bridge_on() and not extra:
                    extra = ["--ansible-modules", "auto", "--ansible-python", str(c.venv / "bin" / "python3")]
                r = c.converge(PULL_MOUNT, extra, playbook=playbook, host_name="localhost", env=env,
                               timeout=1200)
                ok = r.rc in (0, 2)
                if n == 1:
                    res["tasks"] = task_counts(r)
            else:
                r = c.ansible_playbook(PULL_MOUNT, playbook=playbook, env=env, timeout=1800)
                ok = r.rc == 0
            res[f"run{n}"] = {"rc": r.rc, "ok": ok, "changed": r.changed_count(), "seconds": round(r.seconds, 1),
                              "failure": "" if ok else _first_failure(r),
                              "changed_tasks": [t["name"] for t in r.tasks if t.get("changed")][:20]}
            if n == 1:
                if not ok:
                    break
                res["state"] = _snapshot(c)
    return res


def oracle_only() -> bool:
    return os.environ.get("GITOPS_REALWORLD_ORACLE_ONLY", "") not in ("", "0")


def _agent() -> Path:
    return Path(os.environ.get("GITOPS_AGENT_BIN", corpus.REPO / "target" / "debug" / "gitops-agent"))


# --------------------------------------------------------------------------
# comparison
# --------------------------------------------------------------------------
class Image:
    """The containers' common starting point, read on the host (the read-only lower layer): what a
    path is on a side that did not touch it."""

    def __init__(self, rootfs: Path):
        self.root = rootfs
        self.users, self.groups = snapshot_inside.names(str(rootfs))

    def entry(self, path: str) -> dict | None:
        real = self.root / path.lstrip("/")
        try:
            st = os.lstat(real)
        except OSError:
            return None
        return snapshot_inside.entry(path, st, self.users, self.groups, real=str(real))


def compare(a: dict, b: dict, image: Image) -> list[str]:
    """Differences between two states (ansible-core's A, the agent's B); empty when the same.
    A path one side changed and the other did not is compared with the image's version of it
    (the untouched side still has it, unless it is absent from that side's list of paths)."""
    out: list[str] = []
    fa, fb = a["files"], b["files"]
    all_a, all_b = set(a["all"]), set(b["all"])
    for p in sorted(set(fa) | set(fb)):
        ea = fa.get(p) or (image.entry(p) if p in all_a else None)
        eb = fb.get(p) or (image.entry(p) if p in all_b else None)
        if eb is None and ea is None:
            continue
        if eb is None:
            out.append(f"only after ansible-core: {p} ({ea['type']})")
            continue
        if ea is None:
            out.append(f"only after the agent: {p} ({eb['type']})")
            continue
        for k in ("type", "mode", "owner", "group", "target"):
            if ea.get(k) != eb.get(k):
                out.append(f"{p}: {k} ansible-core={ea.get(k)!r} agent={eb.get(k)!r}")
        if ea.get("sha256") != eb.get("sha256"):
            if "text" in ea and "text" in eb:
                d = list(difflib.unified_diff(ea["text"].splitlines(), eb["text"].splitlines(),
                                              "ansible-core", "agent", lineterm="", n=1))
                out.append(f"{p}: content differs")
                out += ["    " + x for x in d[2:14]]
            else:
                out.append(f"{p}: content differs (binary or large)")
    for key in ("packages", "users", "groups", "enabled_units", "running_services"):
        sa, sb = set(a[key]), set(b[key])
        for x in sorted(sa - sb):
            out.append(f"{key}: only after ansible-core: {x}")
        for x in sorted(sb - sa):
            out.append(f"{key}: only after the agent: {x}")
    return out


def converge_entry(m: corpus.Manifest, e: corpus.Entry, pulldir: Path, rootfs: Path,
                   sources: Path | None) -> dict:
    corpus.add_collections(m, e, pulldir, sources)
    repo = apt_repo(e.packages + e.preinstall, rootfs)
    t0 = time.monotonic()
    ans = side("ansible", rootfs, pulldir, repo, e.playbook, e.preinstall)
    # oracle-only (harness self-check): the "agent" container is converged by ansible-core too, so
    # any difference is the harness's (volatile state not excluded), not the agent's
    agt = side("ansible" if oracle_only() else "agent", rootfs, pulldir, repo, e.playbook, e.preinstall)
    res = {"ansible": ans, "agent": agt, "seconds": time.monotonic() - t0}
    if not ans["run1"]["ok"]:
        res["status"], res["note"] = "ansible-failed", ans["run1"]["failure"]
    elif not agt["run1"]["ok"]:
        res["status"], res["note"] = "agent-failed", agt["run1"]["failure"]
    else:
        res["diffs"] = compare(ans["state"], agt["state"], Image(rootfs))
        res["status"] = "same" if not res["diffs"] else "differs"
        n = sum(1 for x in res["diffs"] if not x.startswith("    "))   # not the text-diff lines
        res["note"] = f"{n} differences" if n else ""
    for k in ("ansible", "agent"):
        res[k].pop("state", None)
    return res


def converge_all(m: corpus.Manifest, entries, rows, dirs: dict, sources: Path | None = None, quiet=False,
                 even_if_invalid=False):
    """Fill the converge columns of ROWS (run.Row) for ENTRIES."""
    rows_by = {r.name: r for r in rows}
    todo = []
    for e in entries:
        r = rows_by[e.name]
        if not e.converge_allowed:
            r.converge = "not-allowed"
        elif dirs.get(e.name) is None:
            r.converge = "skipped"
        elif r.validate != "ok" and not even_if_invalid:
            r.converge, r.converge_note = "blocked", "validate fails"
        else:
            todo.append(e)
    if not todo:
        return
    check_prereqs()
    ct.janitor()
    rootfs = ct.build_rootfs()
    details = {}
    for e in todo:
        r = rows_by[e.name]
        try:
            res = converge_entry(m, e, dirs[e.name], rootfs, sources)
        except Exception as x:  # noqa: BLE001 - one broken entry is a row, not the end of the run
            r.converge, r.converge_note = "error", f"{type(x).__name__}: {str(x)[:300]}"
            if not quiet:
                print(f"converge {e.name}: {r.converge_note}", file=sys.stderr, flush=True)
            continue
        details[e.name] = res
        r.converge, r.converge_note, r.diffs = res["status"], res.get("note", ""), res.get("diffs", [])
        counts = res.get("agent", {}).get("tasks") or {}
        r.tasks_native, r.tasks_via_ansible = counts.get("native"), counts.get("via_ansible")
        a2 = res["agent"].get("run2")
        if a2:
            r.idempotent = f"{a2['changed']} changed" if a2["ok"] else f"failed: {a2['failure'][:80]}"
            n2 = res["ansible"].get("run2", {}).get("changed")
            if n2:
                r.converge_note = (r.converge_note + "; " if r.converge_note else "") + \
                    f"ansible-core's 2nd run changed {n2} too"
        if not quiet:
            print(f"converge {e.name:40} {r.converge:14} 2nd run: {r.idempotent}  {r.converge_note[:100]}",
                  file=sys.stderr, flush=True)
    corpus.OUT.mkdir(parents=True, exist_ok=True)
    (corpus.OUT / "converge.json").write_text(json.dumps(details, indent=1, default=str))
