"""Differential tier: every playbook under playbooks/ runs through ansible-playbook -c local and
through `gitops-agent converge`, into two scratch roots; trees and per-task statuses must match.

Markers in a playbook's site.yml (a comment line "# differential: ..."):
  idempotent          the second run must change nothing (checked for both tools)
  no-check            skip the --check comparison (check mode meaningless for this playbook)
  expect-fail         the run fails (ansible rc 2, agent rc 1); trees and statuses still compared
  check-expect-fail   the --check run fails on both
  tags=a,b            run both tools with --tags a,b
  skip-tags=x         run both tools with --skip-tags x
  extra-vars=k=v      pass -e k=v to both (repeatable)
  inventory=FILE      ansible: -i FILE -l HOST; agent: --inventory FILE --host-name HOST
  host=NAME           the inventory host (default localhost; without inventory=, `-i NAME,`)
  ansible-cfg         ansible reads the playbook directory's ansible.cfg (no ANSIBLE_CONFIG, no -i
                      unless inventory=; `-l HOST`); the agent reads it always
  ansible-modules     the agent runs with its bridge to ansible-core on (--ansible-modules auto,
                      --ansible-python ANSIBLE_BIN_DIR/python3); some task must report via: ansible
  ansible-plugins     the same bridge on, for collection filter/test plugins (no task need run via ansible)
  git-fixture         a source repository ROOT-src.git (and ROOT-link.git) is made beside the root
  pip-fixture         a local wheel directory ROOT-wheels is made beside the root
  ansible-force=a,b   the same as ansible-modules, and the agent's own modules a, b run through ansible-core too
  http-server         serve the playbook's www/ on 127.0.0.1 (tests/lib/httpserver.py) for the
                      test's runs; both tools get -e http_url=http://127.0.0.1:PORT

GITOPS_DIFF_ORACLE_ONLY=1 replaces the agent by a second ansible-playbook run (validates the
playbooks themselves: they pass under ansible-core and leave deterministic trees).
"""
from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

import pytest

import harness
from harness import (PLAYBOOKS_DIR, Markers, ansible_pairs, list_diff, read_markers, run_agent,
                     run_ansible, snapshot, snapshot_exact, tree_diff)

PLAYBOOKS = sorted(p.name for p in PLAYBOOKS_DIR.iterdir() if (p / "site.yml").exists())


def _other(pbdir: Path, root: Path, tmp: Path, **kw):
    """The tool under test: the agent, or ansible again in oracle-only mode."""
    if harness.oracle_only():
        r = run_ansible(pbdir, root, tmp, **kw)
        r.tool = "ansible#2"
        return r
    return run_agent(pbdir, root, **kw)


@contextlib.contextmanager
def _served(pbdir: Path, markers: Markers):
    """The playbook's HTTP server while the block runs (marker http-server), its URL in the
    extra vars of both tools."""
    if not markers.http_server:
        yield
        return
    with harness.http_server(pbdir / "www") as url:
        markers.extra_vars.append(f"http_url={url}")
        yield


def _other_pairs(run):
    return ansible_pairs(run) if run.tool.startswith("ansible") else run.pairs()


def _expected_agent_rc(a_run, host: str) -> int:
    if a_run.rc != 0:
        return 1
    stats = (a_run.raw or {}).get("stats", {}).get(host, {})
    return 2 if stats.get("changed", 0) > 0 else 0


class Problems(list):
    def add(self, title, lines=()):
        self.append(title)
        self.extend(lines)

    def check(self, label):
        if self:
            pytest.fail(f"{label}: {len(self)} problem line(s)\n" + "\n".join(self), pytrace=False)


def _compare_runs(probs: Problems, phase: str, a, g, markers: Markers, *, fail_expected: bool):
    # does each tool's run itself look sane?
    if a.raw is None:
        probs.add(f"[{phase}] ansible produced no callback output (playbook broken under ansible?)",
                  [a.describe()])
        return
    a_failed = a.rc != 0
    if a_failed != fail_expected:
        probs.add(f"[{phase}] ansible rc={a.rc} but expect-fail={fail_expected} (fix the playbook or marker)",
                  [a.describe()])
    if g.raw is None:
        probs.add(f"[{phase}] {g.tool} produced no parseable JSON", [g.describe()])
        return
    if g.tool == "agent":
        want = _expected_agent_rc(a, markers.host)
        if g.rc != want:
            probs.add(f"[{phase}] agent exit code {g.rc}, expected {want} (ansible rc={a.rc}); "
                      f"agent result={g.raw.get('result')!r} error={g.raw.get('error')!r}",
                      ["  agent stderr tail:", harness._tail(g.stderr, 15)])
    if g.tool == "agent":
        ast = (a.raw or {}).get("stats", {}).get(markers.host, {})
        gst = g.raw.get("stats") or {}
        for ak, gk in (("failures", "failed"), ("rescued", "rescued"), ("ignored", "ignored")):
            if ast.get(ak, 0) != gst.get(gk, 0):
                probs.add(f"[{phase}] stats.{gk}: ansible {ast.get(ak, 0)} agent {gst.get(gk, 0)}")
    if g.tool == "agent" and markers.ansible_modules and not markers.ansible_plugins and not any(t.get("via") == "ansible" for t in g.tasks):
        probs.add(f"[{phase}] marked ansible-modules but no agent task ran via ansible")
    pa, pg = ansible_pairs(a), _other_pairs(g)
    d = list_diff(pa, pg, "ansible", g.tool)
    if d:
        probs.add(f"[{phase}] task (name, status, changed) lists differ:", d)


@pytest.mark.parametrize("name", PLAYBOOKS)
def test_converge(name, tmp_path, request):
    """Run 1 on empty roots, then run 2 on the same roots; trees + statuses equal each time."""
    if not harness.oracle_only():
        request.getfixturevalue("agent")
    pbdir = PLAYBOOKS_DIR / name
    markers = read_markers(pbdir / "site.yml")
    ra, rg = tmp_path / "a", tmp_path / "g"
    ra.mkdir()
    rg.mkdir()
    probs = Problems()
    with _served(pbdir, markers):
        _converge_twice(probs, pbdir, ra, rg, tmp_path, markers)
    probs.check(f"{name}")


def _converge_twice(probs, pbdir, ra, rg, tmp_path, markers):
    for phase in ("run1", "run2"):
        a = run_ansible(pbdir, ra, tmp_path, markers=markers)
        g = _other(pbdir, rg, tmp_path, markers=markers)
        _compare_runs(probs, phase, a, g, markers, fail_expected=markers.expect_fail)
        td = tree_diff(snapshot(ra), snapshot(rg), "ansible", g.tool)
        if td:
            probs.add(f"[{phase}] trees differ (A={ra}, G={rg}):", td)
        if phase == "run2" and markers.idempotent:
            for run in (a, g):
                ch = [t["name"] for t in run.tasks if t["changed"]]
                if ch:
                    probs.add(f"[run2] {run.tool}: playbook is marked idempotent but second run changed: {ch}")
        if probs:
            probs.add(f"[{phase}] ansible tasks:", ["  " + repr(p) for p in ansible_pairs(a)])
            probs.add(f"[{phase}] {g.tool} tasks:", ["  " + repr(p) for p in _other_pairs(g)])
            break  # run 2 on diverged trees only adds noise


@pytest.mark.parametrize("name", PLAYBOOKS)
def test_check_mode(name, tmp_path, request):
    """--check on fresh roots: the agent changes nothing and reports what ansible --check reports."""
    pbdir = PLAYBOOKS_DIR / name
    markers = read_markers(pbdir / "site.yml")
    if not markers.check:
        pytest.skip("playbook marked no-check")
    if not harness.oracle_only():
        request.getfixturevalue("agent")
    ra, rg = tmp_path / "a", tmp_path / "g"
    ra.mkdir()
    rg.mkdir()
    # a pre-existing file, so "unchanged" is more than "still empty"
    (rg / "pre-existing").write_text("keep me\n")
    (ra / "pre-existing").write_text("keep me\n")
    before = snapshot_exact(rg)
    probs = Problems()
    with _served(pbdir, markers):
        a = run_ansible(pbdir, ra, tmp_path, markers=markers, check=True)
        g = _other(pbdir, rg, tmp_path, markers=markers, check=True)
    _compare_runs(probs, "check", a, g, markers, fail_expected=markers.check_expect_fail)
    td = tree_diff(before, snapshot_exact(rg), "before", "after")
    if td:
        probs.add(f"[check] {g.tool} modified its root in --check mode:", td)
    if probs:
        probs.add("[check] ansible tasks:", ["  " + repr(p) for p in ansible_pairs(a)])
        probs.add(f"[check] {g.tool} tasks:", ["  " + repr(p) for p in _other_pairs(g)])
    probs.check(f"{name} --check")


def test_diff_output_human(tmp_path, agent):
    """--diff with the human output: same exit status as without it, and a diff is shown."""
    pbdir = PLAYBOOKS_DIR / "lineinfile_basic"
    root = tmp_path / "g"
    root.mkdir()
    g = run_agent(pbdir, root, diff=True, fmt_json=False)
    assert g.rc == 2, g.describe()
    out = g.stdout + g.stderr
    assert any(l.startswith(("+", "-", "@@")) for l in out.splitlines()), \
        "no diff lines (+/-/@@) in the --diff output:\n" + g.describe()
    # second run: --diff --check on a converged root, nothing to show and exit 0
    g2 = run_agent(pbdir, root, diff=True, check=True, fmt_json=False)
    assert g2.rc == 0, g2.describe()


def test_diff_output_check_mode(tmp_path, agent):
    """--check --diff on a fresh root shows what would change, changes nothing."""
    pbdir = PLAYBOOKS_DIR / "copy_basic"
    root = tmp_path / "g"
    root.mkdir()
    g = run_agent(pbdir, root, diff=True, check=True, fmt_json=False)
    assert g.rc == 2, g.describe()
    assert any(l.startswith("+") for l in (g.stdout + g.stderr).splitlines()), g.describe()
    assert list(root.iterdir()) == [], "check mode wrote into the root"
