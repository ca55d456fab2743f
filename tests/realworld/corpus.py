"""The corpus: read manifest.yml, bring each source in (PyPI wheel or a user's checkout), and build
one ansible-pull directory per entry under target/realworld/work/<entry>/.

Nothing that this brings in is committed: wheels are cached under target/realworld/cache, GitHub
sources come from a directory the user gives (--sources), entries whose source is not there are
reported as "source absent".
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
MANIFEST = HERE / "manifest.yml"
# GITOPS_REALWORLD_OUT: another output dir (report, work dirs), e.g. for two runs at once; the
# download cache stays shared
OUT = Path(os.environ.get("GITOPS_REALWORLD_OUT") or REPO / "target" / "realworld")
CACHE = REPO / "target" / "realworld" / "cache"
WORK = OUT / "work"


class SourceAbsent(Exception):
    """The source of an entry is not on this machine (a GitHub checkout not placed under --sources)."""


@dataclass
class Entry:
    name: str
    source: str
    kind: str                      # "role" or "pull"
    path: str
    role: str | None
    playbook: str
    vars: dict
    converge_allowed: bool
    converge_why: str
    packages: list[str] = field(default_factory=list)
    preinstall: list[str] = field(default_factory=list)

    @property
    def slug(self) -> str:
        return self.name.replace("/", "_")


@dataclass
class Manifest:
    sources: dict
    entries: list[Entry]
    floors: dict
    support: dict        # {"source": name, "collections": {fqcn: path in that source}}


def load(path: Path = MANIFEST) -> Manifest:
    doc = yaml.safe_load(path.read_text())
    entries = []
    for e in doc["entries"]:
        conv = e.get("converge") or {}
        entries.append(Entry(
            name=e["name"], source=e["source"], kind=e.get("kind", "role"), path=e.get("path", "."),
            role=e.get("role"), playbook=e.get("playbook", "site.yml"),
            vars={**(doc["sources"][e["source"]].get("vars") or {}), **(e.get("vars") or {})},
            converge_allowed=bool(conv.get("allowed")), converge_why=conv.get("why", ""),
            packages=list(conv.get("packages") or []), preinstall=list(conv.get("preinstall") or [])))
    return Manifest(sources=doc["sources"], entries=entries, floors=doc.get("floors") or {},
                    support=doc.get("support_collections") or {})


# --------------------------------------------------------------------------
# sources
# --------------------------------------------------------------------------
def _sha256(p: Path) -> str:
    h = hashlib.sha256()
    with open(p, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def wheel(src: dict) -> Path:
    """The pinned wheel, from the cache or downloaded from PyPI with pip; its sha256 checked."""
    CACHE.mkdir(parents=True, exist_ok=True)
    whl = CACHE / src["file"]
    if not whl.exists():
        subprocess.run([sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "-q",
                        "--no-deps", "--only-binary", ":all:", "-d", str(CACHE),
                        f"{src['package']}=={src['version']}"], check=True, stdin=subprocess.DEVNULL)
    got = _sha256(whl)
    if got != src["sha256"]:
        raise RuntimeError(f"{whl}: sha256 {got}, the manifest pins {src['sha256']}")
    return whl


def _unpacked_wheel(name: str, src: dict, prefixes: list[str]) -> Path:
    """The members of the wheel under PREFIXES, unpacked once into the cache."""
    root = CACHE / f"{src['package']}-{src['version']}"
    todo = [p for p in prefixes if not (root / p).exists()]
    if todo:
        with zipfile.ZipFile(wheel(src)) as z:
            for m in z.namelist():
                if any(m == p or m.startswith(p.rstrip("/") + "/") for p in todo):
                    z.extract(m, root)
    return root


def _github_tree(src: dict, sources_dir: Path | None) -> Path:
    """A tree of the pinned commit: a checkout under SOURCES_DIR (owner/name, owner+name), or a git
    directory there (the search tool's mirror layout owner+name/repo) exported with git archive."""
    repo = src["repo"]
    owner, name = repo.split("/", 1)
    if sources_dir is None:
        raise SourceAbsent(f"{repo}: no --sources directory")
    for cand in (sources_dir / f"{owner}+{name}" / "repo", sources_dir / f"{owner}+{name}"):
        if _is_git_dir(cand):
            return _export(cand, src)
    for cand in (sources_dir / owner / name, sources_dir / f"{owner}+{name}", sources_dir / name):
        if cand.is_dir() and not _is_git_dir(cand) and not _is_git_dir(cand / "repo") and any(cand.iterdir()):
            return cand     # a work tree: used as it is (the user checked out the pinned commit)
    raise SourceAbsent(f"{repo}: not under {sources_dir}")


def _export(git_dir: Path, src: dict) -> Path:
    """The pinned commit of GIT_DIR, exported once into the cache with git archive."""
    owner, name = src["repo"].split("/", 1)
    out = CACHE / "github" / f"{owner}+{name}-{src['commit'][:12]}"
    if not (out / ".complete").exists():
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        arch = subprocess.run(["git", "--git-dir", str(git_dir), "archive", src["commit"]], capture_output=True)
        if arch.returncode != 0:
            shutil.rmtree(out, ignore_errors=True)
            raise SourceAbsent(f"{src['repo']}: commit {src['commit'][:12]} not in {git_dir}")
        subprocess.run(["tar", "-x", "-C", str(out)], input=arch.stdout, check=True)
        (out / ".complete").write_text(src["commit"] + "\n")
    return out


def _is_git_dir(p: Path) -> bool:
    return (p / "HEAD").is_file() and (p / "objects").is_dir()


def source_tree(m: Manifest, entry: Entry, sources_dir: Path | None) -> tuple[Path, Path]:
    """(top of the source, directory of the entry inside it)."""
    src = m.sources[entry.source]
    if src["kind"] == "pypi":
        base = src.get("roles_dir", "")
        rel = f"{base}/{entry.path}" if base else entry.path
        prefixes = [rel] + list((src.get("collections") or {}).values())
        prefixes += [f"{base}/{c}" for c in src.get("companions", [])]
        top = _unpacked_wheel(entry.source, src, prefixes)
        return top, top / rel
    top = _github_tree(src, sources_dir)
    return top, (top / entry.path).resolve()


# --------------------------------------------------------------------------
# the ansible-pull directory of an entry
# --------------------------------------------------------------------------
def _copy(src: Path, dst: Path):
    """Copy a tree (hard links where the file system allows: the cache is on the same disk)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    if subprocess.run(["cp", "-al", str(src), str(dst)], capture_output=True).returncode != 0:
        shutil.rmtree(dst, ignore_errors=True)
        shutil.copytree(src, dst, symlinks=True)


def site_yml(entry: Entry) -> str:
    play = {"name": f"corpus: {entry.name}", "hosts": "localhost"}
    if entry.vars:
        play["vars"] = entry.vars
    play["roles"] = [entry.role]
    return "# written by tests/realworld/corpus.py from manifest.yml\n" + \
        yaml.safe_dump([play], sort_keys=False, default_flow_style=False)


def materialise(m: Manifest, entry: Entry, sources_dir: Path | None) -> Path:
    """Build target/realworld/work/<entry>/ (an ansible-pull directory); SourceAbsent if the source
    is not here."""
    top, where = source_tree(m, entry, sources_dir)
    if not where.is_dir():
        raise FileNotFoundError(f"{entry.name}: {entry.path} is not a directory in its source")
    if entry.kind == "role" and not any((where / sub / f"main.{ext}").exists()
                                         for sub in ("tasks", "meta") for ext in ("yml", "yaml")):
        raise FileNotFoundError(f"{entry.name}: {where} has no tasks/main.yml nor meta/main.yml")
    src = m.sources[entry.source]
    d = WORK / entry.slug
    shutil.rmtree(d, ignore_errors=True)
    if entry.kind == "pull":
        _copy(where, d)
        return d
    d.mkdir(parents=True)
    _copy(where, d / "roles" / entry.role)
    base = src.get("roles_dir", "")
    for comp in src.get("companions", []):
        if comp != entry.role:
            _copy(top / base / comp, d / "roles" / comp)
    (d / "site.yml").write_text(site_yml(entry))
    return d


def add_collections(m: Manifest, entry: Entry, d: Path, sources_dir: Path | None):
    """The entry's own collection (a source's `collections`) and the support collections (manifest:
    support_collections) beside the playbook D: for ansible-core in the converge comparison (the
    agent's validate does not read them; copying them for every entry would slow validate down)."""
    wanted = []     # (top of a source, path in it, fqcn)
    src = m.sources[entry.source]
    if src.get("collections"):
        top, _ = source_tree(m, entry, sources_dir)
        wanted += [(top, rel, fq) for fq, rel in src["collections"].items()]
    colls = m.support.get("collections") or {}
    if colls:
        name = m.support["source"]
        top = _unpacked_wheel(name, m.sources[name], list(colls.values()))
        wanted += [(top, rel, fq) for fq, rel in colls.items()]
    for top, rel, fq in wanted:
        ns, coll = fq.split(".", 1)
        dst = d / "collections" / "ansible_collections" / ns / coll
        if not dst.exists():
            _copy(top / rel if rel != "." else top, dst)


def licence_of(m: Manifest, entry: Entry) -> str:
    return str(m.sources[entry.source].get("licence", "?"))


def origin_of(m: Manifest, entry: Entry) -> str:
    s = m.sources[entry.source]
    if s["kind"] == "pypi":
        return f"PyPI {s['package']} {s['version']}"
    return f"{s['repo']}@{s['commit'][:12]}"


def default_sources_dir() -> Path | None:
    v = os.environ.get("GITOPS_REALWORLD_SOURCES")
    return Path(v) if v else None
