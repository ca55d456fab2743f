"""Bad input for get_url, unarchive and pause (agent only): a URL that is not http(s)/file,
archives with members that would land outside dest, a pause that would wait for a key. Each case: a clear error naming the file (and the URL
or member), the scratch root and the directory around it byte-for-byte unchanged.

ansible-core for the record: get_url fetches ftp:// URLs (the agent refuses them: its client
speaks http, https and file); GNU tar strips a leading '/' from members and skips '..' members
with a warning, extracting the rest (the agent refuses the whole archive, nothing extracted).
"""
from __future__ import annotations

import io
import tarfile
import textwrap
from pathlib import Path

import pytest

import harness
from harness import snapshot_exact, tree_diff


def _play(tasks: str) -> str:
    return "- hosts: localhost\n  gather_facts: false\n  tasks:\n" + textwrap.indent(tasks, "    ")


def _tar(members: list[tuple[str, str, str]]) -> bytes:
    """A tar.gz of (name, kind f|l, content-or-target); raw names, as an attacker writes them."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", format=tarfile.GNU_FORMAT) as tf:
        for name, kind, body in members:
            t = tarfile.TarInfo(name)
            t.mtime = 1600000000
            if kind == "l":
                t.type = tarfile.SYMTYPE
                t.linkname = body
                tf.addfile(t)
            else:
                t.size = len(body)
                tf.addfile(t, io.BytesIO(body.encode()))
    return buf.getvalue()


_UNARCHIVE = '- name: extract\n  unarchive:\n    src: evil.tar.gz\n    dest: "{{ root }}"\n'

CASES = {
    # name: (site.yml, archive members or None, expected rc, words that must appear)
    "get-url-ftp-literal": (
        _play('- name: a change first\n  copy:\n    content: "changed\\n"\n    dest: "{{ root }}/existing.conf"\n'
              '- name: fetch\n  get_url:\n    url: ftp://127.0.0.1/file.txt\n    dest: "{{ root }}/file.txt"\n'),
        None, 3, ("site.yml", "ftp://127.0.0.1/file.txt", "url")),
    "get-url-ftp-templated": (
        _play('- name: fetch\n  get_url:\n    url: "{{ \'ftp\' }}://127.0.0.1/file.txt"\n'
              '    dest: "{{ root }}/file.txt"\n'),
        None, 1, ("site.yml", "ftp://127.0.0.1/file.txt")),
    "unarchive-remote-url-scheme": (
        _play('- name: extract\n  unarchive:\n    src: ftp://127.0.0.1/a.tar.gz\n    dest: "{{ root }}"\n'
              '    remote_src: true\n'),
        None, 3, ("site.yml", "ftp://127.0.0.1/a.tar.gz")),
    "pause-prompt": (
        _play('- name: ask\n  pause:\n    prompt: "Continue?"\n'), None, 1, ("site.yml", "prompt", "terminal")),
    "pause-without-duration": (
        _play('- name: wait for a key\n  pause: {}\n'), None, 1, ("site.yml", "seconds or minutes")),
    "unarchive-dotdot-member": (
        _play(_UNARCHIVE), [("ok.txt", "f", "fine\n"), ("../escaped.txt", "f", "evil\n")], 1,
        ("site.yml", "../escaped.txt", "nothing extracted")),
    "unarchive-absolute-member": (
        _play(_UNARCHIVE), [("ok.txt", "f", "fine\n"), ("/tmp/absolute-member.txt", "f", "evil\n")], 1,
        ("site.yml", "/tmp/absolute-member.txt", "nothing extracted")),
    "unarchive-link-escaping": (
        _play(_UNARCHIVE), [("ok.txt", "f", "fine\n"), ("up", "l", "../.."), ("up/x", "f", "evil\n")], 1,
        ("site.yml", "up", "nothing extracted")),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_network_input(name, tmp_path, agent):
    site, members, rc, words = CASES[name]
    repo = tmp_path / "repo"
    root = tmp_path / "box" / "root"
    (repo / "files").mkdir(parents=True)
    root.mkdir(parents=True)
    (repo / "site.yml").write_text(site)
    if members is not None:
        (repo / "files" / "evil.tar.gz").write_bytes(_tar(members))
    (root / "existing.conf").write_text("original\n")
    before_box = snapshot_exact(tmp_path / "box")
    r = harness.run_agent(repo, root, fmt_json=False)
    problems = []
    if r.rc != rc:
        problems.append(f"exit code {r.rc}, expected {rc}")
    d = tree_diff(before_box, snapshot_exact(tmp_path / "box"), "before", "after")
    if d:
        problems.append("the root or its parent changed:\n" + "\n".join(d))
    if Path("/tmp/absolute-member.txt").exists():
        problems.append("/tmp/absolute-member.txt was written")
    out = r.stderr + "\n" + r.stdout
    for w in words:
        if w not in out:
            problems.append(f"the output does not mention {w!r}")
    if problems:
        pytest.fail(f"{name}:\n  - " + "\n  - ".join(problems) + "\n" + r.describe(), pytrace=False)
