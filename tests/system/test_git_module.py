"""git inside a booted container: ansible-core and the agent clone, move and re-check the same
working trees from a repository bound into the container (tests/lib/fixtures.py's source), with
the container's own git; same commits and files both ways, an unchanged third run."""
from __future__ import annotations

import pytest

from container import Container
from fixtures import git_source
from test_apt_systemd import PB_AT, changed, write_playbook

SRC_AT = "/srv/src.git"


@pytest.mark.parametrize("tool", ["ansible", "agent"])
def test_git_clone_update_same_as_ansible(rootfs, agent_binary, tmp_path, tool):
    src = tmp_path / "src.git"
    git_source(src)
    pb = write_playbook(tmp_path / "pb", f"""\
        - name: the application at a version
          git:
            repo: {SRC_AT}
            dest: /opt/app
            version: "{{{{ ver }}}}"
          register: app
        - name: a shallow clone of a branch
          git:
            repo: file://{SRC_AT}
            dest: /opt/shallow
            version: next
            depth: 1
        - name: the commit checked out
          copy:
            dest: /opt/app.commit
            content: "{{{{ app.after }}}}\\n"
        """)
    with Container(rootfs, [(src, SRC_AT), (pb, PB_AT)], agent=agent_binary,
                   ansible=(tool == "ansible")) as c:
        # The repository is the host's (another owner inside): allow it, as a host would.
        c.run(["git", "config", "--system", "--add", "safe.directory", "*"])
        runs, commits = [], []
        for ver in ("v1", "main", "main"):
            extra = ["-e", f"ver={ver}"]
            r = (c.ansible_playbook(PB_AT, extra, playbook="local.yml") if tool == "ansible"
                 else c.converge(PB_AT, extra))
            assert r.tasks, r.stdout + r.stderr
            assert all(t["status"] != "failed" for t in r.tasks), (tool, r.stdout[-4000:].splitlines())
            runs.append(changed(r))
            commits.append(c.read_file("/opt/app.commit").strip())
        a_txt = c.read_file("/opt/app/a.txt")
        shallow = c.run(["git", "-C", "/opt/shallow", "rev-list", "--count", "HEAD"]).stdout.strip()
        c_txt = c.read_file("/opt/shallow/c.txt")
    names = ["the application at a version", "a shallow clone of a branch", "the commit checked out"]
    assert runs[0] == list(zip(names, [True, True, True])), (tool, runs[0])
    assert runs[1] == list(zip(names, [True, False, True])), (tool, runs[1])
    assert runs[2] == list(zip(names, [False, False, False])), (tool, runs[2])
    assert commits[0] != commits[1] and commits[1] == commits[2], commits
    assert (a_txt, shallow, c_txt) == ("two\n", "1", "three\n")
