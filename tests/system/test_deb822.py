"""deb822_repository inside a booted container: the .sources file the agent writes is byte for
byte the one ansible-core writes (ansible runs in a second container), and apt uses it."""
from __future__ import annotations

import json
import textwrap

import pytest

from container import Container
from test_apt_systemd import PB_AT, REPO_AT, changed, dpkg_state, write_playbook

KEY = """-----BEGIN PGP PUBLIC KEY BLOCK-----

mDMEZ0gatestFAKEKEYdGVzdAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA
=abcd
-----END PGP PUBLIC KEY BLOCK-----
"""


@pytest.mark.parametrize("tool", ["ansible", "agent"])
def test_deb822_sources_file_same_as_ansible(rootfs, apt_repo, agent_binary, tmp_path, tool):
    pb = write_playbook(tmp_path / "pb", f"""\
        - name: test source
          deb822_repository:
            name: GA Test_repo
            uris: file:{REPO_AT}
            suites: ./
            trusted: true
        - name: a second source with an inline key, disabled
          deb822_repository:
            name: other
            types: [deb, deb-src]
            uris: [http://example.invalid/debian]
            suites: [bookworm]
            components: [main, contrib]
            architectures: amd64
            enabled: false
            signed_by: "{{{{ key }}}}"
          vars:
            key: {json.dumps(KEY)}
        - name: cache
          apt: update_cache=yes
          changed_when: false
        - name: app from the deb822 source
          apt: name=gatest-app
        - name: gone again
          deb822_repository:
            name: gone
            state: absent
        """)
    with Container(rootfs, [(apt_repo.path, REPO_AT), (pb, PB_AT)], agent=agent_binary,
                   ansible=(tool == "ansible")) as c:
        runs = []
        for _ in range(2):
            # ansible-core 2.19's deb822_repository needs python3-debian in the interpreter it
            # runs under (no respawn): the system one.
            r = (c.ansible_playbook(PB_AT, playbook="local.yml", env={"ANSIBLE_PYTHON_INTERPRETER": "/usr/bin/python3"})
                 if tool == "ansible" else c.converge(PB_AT))
            assert r.tasks, r.stdout + r.stderr
            assert all(t["status"] != "failed" for t in r.tasks), (tool, r.stdout[-4000:].splitlines())
            runs.append(changed(r))
        files = {n: c.read_file(f"/etc/apt/sources.list.d/{n}") for n in ("ga-test-repo.sources", "other.sources")}
        modes = c.run(["stat", "-c", "%a", "/etc/apt/sources.list.d/ga-test-repo.sources"]).stdout.strip()
        state = dpkg_state(c)
    assert runs[0] == [("test source", True), ("a second source with an inline key, disabled", True),
                       ("cache", False), ("app from the deb822 source", True), ("gone again", False)], (tool, runs[0])
    assert not any(ch for _, ch in runs[1]), (tool, runs[1])
    assert files["ga-test-repo.sources"] == textwrap.dedent(f"""\
        X-Repolib-Name: GA Test_repo
        Suites: ./
        Trusted: yes
        Types: deb
        URIs: file:{REPO_AT}
        """), (tool, files["ga-test-repo.sources"])
    assert files["other.sources"].startswith("Architectures: amd64\nComponents: main contrib\nEnabled: no\n"), files
    assert "Signed-By:\n    -----BEGIN PGP PUBLIC KEY BLOCK-----\n    .\n    mDMEZ0" in files["other.sources"], files
    assert modes == "644"
    assert state["gatest-app"][0] == "ii"
