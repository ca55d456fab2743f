"""Fixtures the differential playbooks of the `git` and `pip` modules read, made beside a run's
scratch root (``ROOT-src.git``, ``ROOT-wheels``) so that they are not part of the compared tree.

Markers (see harness.read_markers): ``git-fixture`` makes ``ROOT-src.git`` (and ``ROOT-link.git``, a link to it), ``pip-fixture`` makes
``ROOT-wheels``. Both are deterministic (fixed identities and dates: the same commit ids in both
roots) and made once per root (the second run finds them).
"""
from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import tempfile
import zipfile
from pathlib import Path

_GIT_ENV = {
    "GIT_AUTHOR_NAME": "fixture", "GIT_AUTHOR_EMAIL": "fixture@example.com",
    "GIT_COMMITTER_NAME": "fixture", "GIT_COMMITTER_EMAIL": "fixture@example.com",
    "GIT_AUTHOR_DATE": "2020-01-01T00:00:00Z", "GIT_COMMITTER_DATE": "2020-01-01T00:00:00Z",
    "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_NOSYSTEM": "1",
}


def _git(cwd: Path, *args: str):
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True,
                   env={**os.environ, **_GIT_ENV})


def git_source(bare: Path, link: Path | None = None):
    """A bare repository: `main` = one (tag v1, annotated; lightweight tag v1-light) -> two;
    branch `next` = two -> three. HEAD names main. `link`: a symbolic link to it (another URL
    for the same repository)."""
    if link is not None and not link.is_symlink():
        link.symlink_to(bare.name)
    if bare.exists():
        return
    with tempfile.TemporaryDirectory() as tmp:
        wt = Path(tmp)
        _git(wt, "init", "-q", "-b", "main")
        (wt / "a.txt").write_text("one\n")
        _git(wt, "add", "a.txt")
        _git(wt, "commit", "-q", "-m", "one")
        _git(wt, "tag", "-a", "v1", "-m", "version 1")
        _git(wt, "tag", "v1-light")
        (wt / "a.txt").write_text("two\n")
        (wt / "b.txt").write_text("bee\n")
        _git(wt, "add", "a.txt", "b.txt")
        _git(wt, "commit", "-q", "-m", "two")
        _git(wt, "checkout", "-q", "-b", "next")
        (wt / "c.txt").write_text("three\n")
        _git(wt, "add", "c.txt")
        _git(wt, "commit", "-q", "-m", "three")
        _git(wt, "checkout", "-q", "main")
        _git(wt, "clone", "-q", "--bare", str(wt), str(bare))


def _wheel(dest: Path, name: str, version: str):
    """A pure-Python wheel with one module `NAME.py` (VERSION = version)."""
    dist = f"{name}-{version}.dist-info"
    files = {
        f"{name}.py": f"VERSION = {version!r}\n",
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: fixtures\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(text.encode())}")
    record.append(f"{dist}/RECORD,,")
    files[f"{dist}/RECORD"] = "\n".join(record) + "\n"
    with zipfile.ZipFile(dest / f"{name}-{version}-py3-none-any.whl", "w") as z:
        for path, text in files.items():
            z.writestr(path, text)


def wheels(dest: Path):
    """A --find-links directory: gitops_tiny 1.0 and 2.0, gitops_other 1.0."""
    if dest.exists():
        return
    dest.mkdir(parents=True)
    _wheel(dest, "gitops_tiny", "1.0")
    _wheel(dest, "gitops_tiny", "2.0")
    _wheel(dest, "gitops_other", "1.0")
