"""user, group and authorized_key against a real system: inside throwaway systemd-nspawn
containers (tests/lib/container.py), never on this machine's own accounts.

- test_accounts_converge: the agent converges tests/system/accounts/site.yml twice (the second
  run changes nothing), --check after a drift changes nothing, then remove.yml twice; the end
  state is asserted on /etc/passwd, /etc/group, /etc/shadow and the files.
- test_accounts_differential: the same playbooks through ansible-core (with the ansible.posix
  collection for authorized_key) in a second container: the same /etc/passwd, group, shadow,
  gshadow, the same authorized_keys files (content, mode, owner) and homes, and the same
  per-task `changed` on every run.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import zipfile
from pathlib import Path

import pytest

import harness
from container import Container
from pkgrepo import cache_dir, file_lock

PB_DIR = Path(__file__).resolve().parent / "accounts"
PB_AT = "/srv/pb"
KEY_ALICE = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGatestKeyOneGatestKeyOneGatestKeyOne01 alice@laptop"
KEY_OPS = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGatestKeyTwoGatestKeyTwoGatestKeyTwo02 ops@bastion"
KEY_OPS_BLOB = KEY_OPS.split()[1]
KEY_CI = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABgQGatestKeyThreeGatestKeyThree03"
HASH_ALICE = ("$6$gatestsalt1$2GHcGsDXJOh5h8qXtSwMNi2zc9.oDdbg5UjVunF1bVhSkrt52L/2cD7c2YwL0Icnx3af8j"
              "HBhe01899cx44/B0")
HASH_BOB = ("$6$gatestsalt2$iAm6v0z4QrmaAWvDBPUuXgaiYq7pN02PuhcSldyUMbrgQ4mDcI2OVy428iEOywdJR8Xjiqkdd"
            "4PMsYpbhzo1O/")

# ansible.posix comes with the `ansible` package of the same ansible-core series (12.x: core 2.19).
ANSIBLE_PKG = "ansible>=12,<13"

@pytest.fixture(scope="session")
def posix_collection() -> Path:
    """A collections dir holding ansible_collections/ansible/posix, extracted once from the
    `ansible` wheel on PyPI (nothing else of it is installed)."""
    dest = cache_dir() / "ansible-posix-12"
    marker = dest / "ansible_collections" / "ansible" / "posix" / "MANIFEST.json"
    if marker.exists():
        return dest
    with file_lock(cache_dir() / ".ansible-posix.lock"):
        if marker.exists():
            return dest
        pip = harness.ansible_bin_dir() / "pip"
        tmp = Path(tempfile.mkdtemp(prefix=".ansible-posix.", dir=cache_dir()))
        try:
            p = subprocess.run([str(pip), "download", "--no-deps", "-q", "-d", str(tmp), ANSIBLE_PKG],
                               capture_output=True, text=True, timeout=900)
            if p.returncode != 0:
                msg = f"cannot download {ANSIBLE_PKG} for ansible.posix: {p.stderr[-500:]}"
                if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
                    pytest.fail(msg, pytrace=False)
                pytest.skip(msg)
            wheel = next(tmp.glob("ansible-*.whl"))
            out = tmp / "tree"
            with zipfile.ZipFile(wheel) as z:
                for n in z.namelist():
                    if n.startswith("ansible_collections/ansible/posix/") and not n.endswith("/"):
                        z.extract(n, out)
            if dest.exists():
                shutil.rmtree(dest)
            os.rename(out, dest)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return dest


def seed_carol(c: Container):
    """carol exists before the first run, with an authorized_keys the play rewrites."""
    c.run("useradd -m -s /bin/sh carol")
    c.write_file("/home/carol/.ssh/authorized_keys",
                 f"# old keys\nssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGatestStale99 stale@old\n{KEY_OPS}\n",
                 mode=0o644)
    c.run("chown -R carol:carol /home/carol/.ssh && chmod 0755 /home/carol/.ssh")


MESSY = (f"# frank's keys\n{KEY_ALICE}\n\n{KEY_CI}\n{KEY_CI}\n\n\n"
         "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGatestOld99 old@box\n"
         f"{KEY_ALICE.rsplit(' ', 1)[0]} alice@other\nno-pty {KEY_OPS}")


def seed_edge(c: Container):
    """What edge.yml starts from."""
    c.run("useradd -m frank && useradd -m george && rm -rf /home/george && chage -E 2030-01-01 carol")
    c.write_file("/srv/messy/authorized_keys", MESSY)
    c.write_file("/srv/messy/real", KEY_OPS + "\n")
    c.run("ln -s real /srv/messy/link")


def changed(run) -> list[tuple[str, bool]]:
    return [(t["name"], t["changed"]) for t in run.tasks]


def failed(run) -> str:
    return f"rc={run.rc}\nstdout:\n{run.stdout[-4000:]}\nstderr:\n{run.stderr[-4000:]}"


def entries(c: Container, path: str) -> dict[str, list[str]]:
    out = {}
    for line in c.read_file(path).splitlines():
        f = line.split(":")
        out[f[0]] = f
    return out


def stat(c: Container, *paths: str) -> dict[str, str]:
    """path -> 'mode user group' (or 'absent')."""
    res = {}
    for p in paths:
        r = c.run(["stat", "-c", "%a %U %G", p], check=False)
        res[p] = r.stdout.strip() if r.returncode == 0 else "absent"
    return res


KEY_FILES = ["/home/alice/.ssh", "/home/alice/.ssh/authorized_keys", "/home/carol/.ssh",
             "/home/carol/.ssh/authorized_keys", "/etc/ssh/keys", "/etc/ssh/keys/bob",
             "/data", "/data/home", "/data/home/bob", "/srv/app"]


EDGE_FILES = ["/srv/messy", "/srv/messy/authorized_keys", "/srv/messy/real", "/srv/messy/link", "/srv/keys",
              "/srv/keys/frank", "/srv/keys/frank/authorized_keys", "/home/george", "/home/george/.profile",
              "/home/bob2", "/home/bob2/.profile"]


# generated SSH keys: random content, compared by mode and owner only
STAT_ONLY = ["/home/henry/.ssh", "/home/henry/.ssh/id_ed25519", "/home/henry/.ssh/id_ed25519.pub"]


def end_state(c: Container) -> dict:
    state = {f: c.read_file(f) for f in ("/etc/passwd", "/etc/group", "/etc/shadow", "/etc/gshadow")}
    files = KEY_FILES + EDGE_FILES
    state["stat"] = stat(c, *files, *STAT_ONLY)
    pub = c.run(["cut", "-d", " ", "-f", "1,3-", "/home/henry/.ssh/id_ed25519.pub"], check=False)
    state["henry.pub type and comment"] = pub.stdout
    for f in files:
        if c.run(["test", "-f", f, "-a", "!", "-h", f], check=False).returncode == 0:
            state[f] = c.read_file(f)
    return state


SITE_TASKS = [
    "group devs with a fixed gid", "system group svc", "group ops as key=value",
    "alice with uid, primary group, groups, shell, comment and password", "alice also in svc",
    "system user app without a home", "bob with a home under a missing parent and groups as text",
    "bob password only on create", "carol gets bash and exactly devs and ops", "alice keys",
    "alice ops key with options", "carol keys exclusive with a new comment", "bob key in a custom path",
]
SITE_RUN1 = [(n, n != "bob password only on create") for n in SITE_TASKS]
EDGE_RUN1 = [(n, True) for n in [
    "dave with an expiry date, a comment with commas, primary group by gid", "erin shares dave's uid",
    "alice gets another password and a locked account", "carol never expires", "carol leaves every group",
    "bob moves his home", "george's deleted home is made again", "a messy keys file gets keys with options",
    "two keys absent, one of them present", "keys through a symlink with follow",
    "keys in a new directory without manage_dir", "frank's password ages",
    "henry is created with password aging and an ssh key"]]
REMOVE_TASKS = ["carol leaves ops (groups without append)", "alice ci key removed", "bob removed with his home",
                "app removed", "group ops removed", "a group that does not exist stays absent"]
REMOVE_RUN1 = [(n, n != "a group that does not exist stays absent") for n in REMOVE_TASKS]


def test_accounts_converge(make_container, agent_binary):
    c = make_container([(PB_DIR, PB_AT)], agent=agent_binary, defaults=False)
    seed_carol(c)
    r1 = c.converge(PB_AT, playbook="site.yml")
    assert r1.rc == 2, failed(r1)
    assert changed(r1) == SITE_RUN1
    # The hashes are never printed, not even in the JSON report of changes.
    assert HASH_ALICE not in r1.stdout + r1.stderr and "gatestsalt" not in r1.stdout + r1.stderr

    passwd, group, shadow = (entries(c, f) for f in ("/etc/passwd", "/etc/group", "/etc/shadow"))
    assert passwd["alice"][2:] == ["2001", "2500", "Alice Example", "/home/alice", "/bin/bash"]
    assert group["devs"][2] == "2500"
    assert int(group["svc"][2]) < 1000, "system group gets a system gid"
    assert sorted(g for g, f in group.items() if "alice" in f[3].split(",")) == ["adm", "ops", "svc"]
    assert shadow["alice"][1] == HASH_ALICE
    app = passwd["app"]
    assert int(app[2]) < 1000 and app[3] == group["svc"][2] and app[5:] == ["/srv/app", "/usr/sbin/nologin"]
    assert passwd["bob"][5:] == ["/data/home/bob", "/bin/sh"]
    assert shadow["bob"][1] in ("!", "!*", "*"), "bob was created without a password"
    assert sorted(g for g, f in group.items() if "bob" in f[3].split(",")) == ["devs", "ops"]
    assert passwd["carol"][6] == "/bin/bash"
    assert sorted(g for g, f in group.items() if "carol" in f[3].split(",")) == ["devs", "ops"]

    st = stat(c, *KEY_FILES)
    assert st["/home/alice/.ssh"] == "700 alice devs"
    assert st["/home/alice/.ssh/authorized_keys"] == "600 alice devs"
    assert st["/home/carol/.ssh"] == "700 carol carol", "a written file resets the dir's mode"
    assert st["/home/carol/.ssh/authorized_keys"] == "600 carol carol"
    assert st["/etc/ssh/keys"] == "700 bob bob" and st["/etc/ssh/keys/bob"] == "600 bob bob"
    assert st["/data/home/bob"].endswith("bob bob") and st["/data/home"] == "755 root root"
    assert st["/srv/app"] == "absent"
    assert c.exists("/data/home/bob/.profile"), "home made from /etc/skel"
    assert c.read_file("/home/alice/.ssh/authorized_keys") == (
        f"{KEY_ALICE}\n{KEY_CI} \nno-pty,from=\"10.0.0.1\" {KEY_OPS}\n")
    assert c.read_file("/home/carol/.ssh/authorized_keys") == f"ssh-ed25519 {KEY_OPS_BLOB} ops-shared\n"
    assert c.read_file("/etc/ssh/keys/bob") == f"{KEY_CI} \n"

    before = end_state(c)
    r2 = c.converge(PB_AT, playbook="site.yml")
    assert r2.rc == 0, failed(r2)
    assert changed(r2) == [(n, False) for n in SITE_TASKS]
    assert end_state(c) == before

    # Drift, then --check: reported, nothing changed.
    c.run("usermod -s /bin/sh alice && groupmod -g 2600 devs && sed -i '$d' /home/alice/.ssh/authorized_keys")
    drifted = end_state(c)
    rc = c.converge(PB_AT, playbook="site.yml", check=True)
    assert rc.rc == 2, failed(rc)
    assert [n for n, ch in changed(rc) if ch] == [
        "group devs with a fixed gid", "alice with uid, primary group, groups, shell, comment and password",
        "alice ops key with options"]
    assert end_state(c) == drifted
    r3 = c.converge(PB_AT, playbook="site.yml")
    assert r3.rc == 2, failed(r3)
    assert end_state(c) == before

    r4 = c.converge(PB_AT, playbook="remove.yml")
    assert r4.rc == 2, failed(r4)
    assert changed(r4) == REMOVE_RUN1
    passwd, group = entries(c, "/etc/passwd"), entries(c, "/etc/group")
    assert "bob" not in passwd and "app" not in passwd and "ops" not in group and "bob" not in group
    assert not c.exists("/data/home/bob")
    assert group["devs"][3] == "carol", group["devs"]
    assert c.read_file("/home/alice/.ssh/authorized_keys") == (
        f"{KEY_ALICE}\nno-pty,from=\"10.0.0.1\" {KEY_OPS}\n")
    r5 = c.converge(PB_AT, playbook="remove.yml")
    assert r5.rc == 0, failed(r5)
    assert changed(r5) == [(n, False) for n in REMOVE_TASKS]


def test_accounts_differential(make_container, agent_binary, posix_collection):
    coll = str(posix_collection)
    env = {"ANSIBLE_COLLECTIONS_PATH": coll}
    g = make_container([(PB_DIR, PB_AT)], agent=agent_binary, defaults=False)
    a = make_container([(PB_DIR, PB_AT), (posix_collection, coll)], agent=False, defaults=False, ansible=True)
    for c in (g, a):
        seed_carol(c)
    def same_state(what: str):
        sa, sg = end_state(a), end_state(g)
        assert sa.keys() == sg.keys(), what
        for k in sa:
            assert sg[k] == sa[k], f"{what}: {k} differs"
        return sa, sg

    for playbook, run1 in (("site.yml", SITE_RUN1), ("edge.yml", EDGE_RUN1), ("remove.yml", REMOVE_RUN1)):
        if playbook == "edge.yml":
            for c in (a, g):
                seed_edge(c)
        for n in (1, 2):
            ra = a.ansible_playbook(PB_AT, playbook=playbook, env=env)
            assert ra.rc == 0, failed(ra)
            rg = g.converge(PB_AT, playbook=playbook)
            assert rg.rc == (2 if n == 1 else 0), failed(rg)
            assert changed(rg) == changed(ra), f"{playbook} run {n}"
            assert changed(ra) == (run1 if n == 1 else [(t, False) for t, _ in run1]), f"{playbook} run {n}"
            same_state(f"{playbook} run {n}")
        if playbook == "site.yml":
            # Drift on both, then --check on both: the same verdicts, nothing changed.
            for c in (a, g):
                c.run("usermod -s /bin/sh -c Drifted alice && groupmod -g 2600 devs"
                      " && gpasswd -d carol ops && sed -i '$d' /home/alice/.ssh/authorized_keys")
            before, _ = same_state("after drift")
            ra = a.ansible_playbook(PB_AT, playbook=playbook, env=env, check=True)
            rg = g.converge(PB_AT, playbook=playbook, check=True)
            assert ra.rc == 0, failed(ra)
            assert rg.rc == 2, failed(rg)
            assert changed(rg) == changed(ra), "check mode"
            assert [t for t, ch in changed(ra) if ch] == [
                "group devs with a fixed gid", "alice with uid, primary group, groups, shell, comment and password",
                "carol gets bash and exactly devs and ops", "alice ops key with options"]
            after, _ = same_state("after --check")
            assert after == before
            # Converging again repairs the drift the same way.
            ra = a.ansible_playbook(PB_AT, playbook=playbook, env=env)
            rg = g.converge(PB_AT, playbook=playbook)
            assert changed(rg) == changed(ra), "repair"
            same_state("repaired")
