"""The dnf module against a real local RPM repository (rpmbuild + createrepo_c), through real dnf.

The CI host is Debian, so dnf installs into a scratch `installroot` (Ansible's own argument),
never into the host's rpm database. What this cannot show: dnf managing the host's own root on an
RPM distribution, GPG-signed repositories, and `dnf5` (see docs/modules.md).
"""
from __future__ import annotations

import subprocess
import textwrap
from pathlib import Path

import pytest

from harness import run_agent


def _playbook(tmp: Path, repo: Path, tasks: str) -> Path:
    pb = tmp / "pb"
    pb.mkdir(exist_ok=True)
    root = tmp / "root"
    root.mkdir(exist_ok=True)
    (pb / "dnf.conf").write_text(textwrap.dedent(f"""\
        [main]
        reposdir={tmp}/no-repos
        cachedir={root}/var/cache/dnf
        install_weak_deps=False
        [gatest]
        name=gatest
        baseurl=file://{repo}
        gpgcheck=0
        """))
    (pb / "site.yml").write_text(
        "- hosts: localhost\n  gather_facts: false\n  vars:\n"
        f"    d: &d {{installroot: '{root}', releasever: '12', conf_file: '{pb}/dnf.conf', disable_gpg_check: true}}\n"
        "  tasks:\n" + textwrap.indent(textwrap.dedent(tasks), "    "))
    return pb


def _installed(root: Path) -> set[str]:
    p = subprocess.run(["rpm", "--root", str(root), "-qa", "--qf", "%{NAME}-%{VERSION}\n"],
                       capture_output=True, text=True)
    return {l for l in p.stdout.split() if l}


def _changed(run) -> list[tuple[str, bool]]:
    return [(t["name"], t["changed"]) for t in run.tasks]


def test_install_dependency_idempotent_pin_latest_remove(tmp_path, rpm_repo):
    root = tmp_path / "root"
    pb = _playbook(tmp_path, rpm_repo.path, """\
        - name: app with its dependency
          dnf: {name: gatest-app, <<: *d}
        - name: pinned hello
          dnf: {name: gatest-hello-1.0, <<: *d}
        """)
    r1 = run_agent(pb, root)
    assert r1.rc == 2, r1.stdout + r1.stderr  # 2 = changed
    assert _changed(r1) == [("app with its dependency", True), ("pinned hello", True)]
    assert {"gatest-app-1.0", "gatest-lib-1.0", "gatest-hello-1.0"} <= _installed(root)

    r2 = run_agent(pb, root)
    assert r2.rc == 0, r2.stdout + r2.stderr
    assert _changed(r2) == [("app with its dependency", False), ("pinned hello", False)]

    pb = _playbook(tmp_path, rpm_repo.path, """\
        - name: hello latest
          dnf: {name: gatest-hello, state: latest, <<: *d}
        - name: the pin is satisfied by the newer version (no downgrade)
          dnf: {name: gatest-hello-1.0, <<: *d}
        - name: app removed
          dnf: {name: gatest-app, state: absent, <<: *d}
        """)
    r3 = run_agent(pb, root)
    assert _changed(r3) == [("hello latest", True),
                            ("the pin is satisfied by the newer version (no downgrade)", False),
                            ("app removed", True)], r3.stdout
    inst = _installed(root)
    assert "gatest-hello-2.0" in inst and "gatest-hello-1.0" not in inst
    assert "gatest-app-1.0" not in inst
    r4 = run_agent(pb, root)
    assert r4.rc == 0 and not any(c for _, c in _changed(r4)), r4.stdout


def test_check_mode_changes_nothing(tmp_path, rpm_repo):
    root = tmp_path / "root"
    pb = _playbook(tmp_path, rpm_repo.path, """\
        - name: app
          dnf: {name: gatest-app, <<: *d}
        """)
    r = run_agent(pb, root, check=True)
    assert _changed(r) == [("app", True)], r.stdout
    assert _installed(root) == set()


def test_missing_package_fails_and_installs_nothing(tmp_path, rpm_repo):
    root = tmp_path / "root"
    pb = _playbook(tmp_path, rpm_repo.path, """\
        - name: one real, one missing
          dnf: {name: [gatest-lib, gatest-nope], <<: *d}
        - name: never reached
          dnf: {name: gatest-hello, <<: *d}
        """)
    r = run_agent(pb, root)
    assert r.rc == 1, r.stdout + r.stderr
    failed = [t for t in r.raw["tasks"] if t["status"] == "failed"]
    assert len(failed) == 1 and "gatest-nope" in failed[0]["msg"], r.stdout
    assert [t["status"] for t in r.raw["tasks"] if t.get("name") == "never reached"] == ["not-run"]
    assert _installed(root) == set()


def test_package_hands_repos_and_allow_downgrade_to_dnf(tmp_path, rpm_repo):
    """`package` with dnf's arguments (as Ansible's package action hands them on): the repo
    disabled by `disablerepo` makes the install fail; enabled again by `enablerepo`; a pin below
    the installed version downgrades only with `allow_downgrade`."""
    root = tmp_path / "root"
    pb = _playbook(tmp_path, rpm_repo.path, """\
        - name: hello 2.0
          package: {name: gatest-hello-2.0, state: present, use: dnf, <<: *d}
        - name: the repository disabled, a new package is not found
          package: {name: gatest-lib, state: present, use: dnf, disablerepo: gatest, <<: *d}
          ignore_errors: true
        - name: disabled then enabled again
          package: {name: gatest-lib, state: present, use: dnf, disablerepo: '*', enablerepo: gatest, <<: *d}
        - name: the 1.0 pin is satisfied by 2.0
          package: {name: gatest-hello-1.0, state: present, use: dnf, <<: *d}
        - name: allow_downgrade takes it down to 1.0
          package: {name: gatest-hello-1.0, state: present, use: dnf, allow_downgrade: true, <<: *d}
        """)
    r = run_agent(pb, root)
    assert [(t["name"], t["status"]) for t in r.tasks] == [
        ("hello 2.0", "changed"),
        ("the repository disabled, a new package is not found", "ignored"),
        ("disabled then enabled again", "changed"),
        ("the 1.0 pin is satisfied by 2.0", "ok"),
        ("allow_downgrade takes it down to 1.0", "changed"),
    ], r.stdout + r.stderr
    inst = _installed(root)
    assert "gatest-hello-1.0" in inst and "gatest-hello-2.0" not in inst, inst
    assert "gatest-lib-1.0" in inst, inst
