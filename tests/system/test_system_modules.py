"""System modules of issue 12 inside booted bookworm containers (systemd as PID 1, own mount,
UTS and network namespaces): mount (a tmpfs mounted, remounted, unmounted, fstab entries; the
same playbooks through ansible-core + ansible.posix in a second container, compared), hostname,
timezone and locale_gen through the agent. Nothing here touches the host: every change happens
in a throwaway container.
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
from pkgrepo import cache_dir, file_lock
from test_accounts import ANSIBLE_PKG, posix_collection  # noqa: F401  (the fixture)

PB_DIR = Path(__file__).resolve().parent / "sysmods"
PB_AT = "/srv/pb"
FSTAB_HEAD = "# empty: nspawn sets up the mounts\n"
TMPFS_LINE = "tmpfs /mnt/gatest tmpfs size=1m,mode=0750 0 0\n"
DATA_LINE = "/dev/gatest-none /srv/gatest\\040data ext4 noatime,noauto 0 2\n"


@pytest.fixture(scope="session")
def general_collection() -> Path:
    """A collections dir holding ansible_collections/community/general, extracted once from the
    `ansible` wheel on PyPI (as test_accounts.posix_collection does for ansible.posix)."""
    dest = cache_dir() / "ansible-general-12"
    marker = dest / "ansible_collections" / "community" / "general" / "MANIFEST.json"
    if marker.exists():
        return dest
    with file_lock(cache_dir() / ".ansible-general.lock"):
        if marker.exists():
            return dest
        pip = harness.ansible_bin_dir() / "pip"
        tmp = Path(tempfile.mkdtemp(prefix=".ansible-general.", dir=cache_dir()))
        try:
            p = subprocess.run([str(pip), "download", "--no-deps", "-q", "-d", str(tmp), ANSIBLE_PKG],
                               capture_output=True, text=True, timeout=900)
            if p.returncode != 0:
                msg = f"cannot download {ANSIBLE_PKG} for community.general: {p.stderr[-500:]}"
                if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
                    pytest.fail(msg, pytrace=False)
                pytest.skip(msg)
            wheel = next(tmp.glob("ansible-*.whl"))
            out = tmp / "tree"
            with zipfile.ZipFile(wheel) as z:
                for n in z.namelist():
                    if n.startswith("ansible_collections/community/general/") and not n.endswith("/"):
                        z.extract(n, out)
            if dest.exists():
                shutil.rmtree(dest)
            os.rename(out, dest)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return dest


def changed(run) -> list[tuple[str, bool]]:
    return [(t["name"], t["changed"]) for t in run.tasks]


def failed(run) -> str:
    return f"rc={run.rc}\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}"


def mount_state(c) -> dict:
    """What the mount playbooks manage: the fstab, what is mounted at the test paths (with
    options), the mount points."""
    mounts = c.run("findmnt -rn -o TARGET,SOURCE,FSTYPE,OPTIONS /mnt/gatest || true").stdout
    return {
        "fstab": c.read_file("/etc/fstab"),
        "mounted": mounts.strip(),
        "dirs": c.run("ls -d /mnt/gatest /mnt/gatest-bad 2>/dev/null || true").stdout,
    }


def test_mount_states_through_the_agent_and_ansible(make_container, agent_binary, posix_collection):  # noqa: F811
    coll = str(posix_collection)
    env = {"ANSIBLE_COLLECTIONS_PATH": coll}
    g = make_container([(PB_DIR, PB_AT)], agent=agent_binary, defaults=False)
    a = make_container([(PB_DIR, PB_AT), (posix_collection, coll)], agent=False, defaults=False, ansible=True)

    def both(playbook: str, *, check: bool = False, want_rc: tuple[int, int]):
        ra = a.ansible_playbook(PB_AT, playbook=playbook, env=env, check=check)
        rg = g.converge(PB_AT, playbook=playbook, check=check)
        assert ra.rc == want_rc[0], failed(ra)
        assert rg.rc == want_rc[1], failed(rg)
        assert changed(rg) == changed(ra), f"{playbook} check={check}"
        sa, sg = mount_state(a), mount_state(g)
        assert sg == sa, f"{playbook} check={check}: agent {sg} != ansible {sa}"
        return rg, sg

    # Check mode: reported as changes, nothing done.
    r, st = both("mount_on.yml", check=True, want_rc=(0, 2))
    assert [ch for _, ch in changed(r)][:2] == [True, True]
    assert st == {"fstab": FSTAB_HEAD, "mounted": "", "dirs": ""}

    r, st = both("mount_on.yml", want_rc=(0, 2))
    assert changed(r) == [("tmpfs mounted", True), ("an fstab-only entry, not mounted at boot", True),
                          ("its registered result", True)]
    assert st["fstab"] == FSTAB_HEAD + TMPFS_LINE + DATA_LINE
    assert st["mounted"].startswith("/mnt/gatest tmpfs tmpfs rw,"), st
    assert "size=1024k" in st["mounted"] and "mode=750" in st["mounted"], st
    assert g.read_file("/root/present_result.txt") == a.read_file("/root/present_result.txt") == (
        "/srv/gatest data|noatime,noauto|no|0|2|/etc/fstab|/dev/gatest-none|ext4\n")

    r, _ = both("mount_on.yml", want_rc=(0, 0))
    assert not any(ch for _, ch in changed(r)), "second run changes nothing"

    r, st = both("mount_remount.yml", want_rc=(0, 2))
    assert changed(r) == [("tmpfs remounted", True)]
    assert st["mounted"].startswith("/mnt/gatest tmpfs"), st

    # A device that does not exist: the task fails, the fstab and the directories are as before.
    before = mount_state(g)
    r, st = both("mount_bad.yml", want_rc=(2, 1))
    assert st == before
    assert "Error mounting /mnt/gatest-bad/deep: " in r.stdout + r.stderr, failed(r)
    assert not g.exists("/mnt/gatest-bad")

    r, st = both("mount_off.yml", check=True, want_rc=(0, 2))
    assert st == before
    r, st = both("mount_off.yml", want_rc=(0, 2))
    assert changed(r) == [("tmpfs unmounted", True), ("fstab-only entry removed", True),
                          ("tmpfs entry and mount point removed", True)]
    assert st == {"fstab": FSTAB_HEAD, "mounted": "", "dirs": ""}
    r, _ = both("mount_off.yml", want_rc=(0, 0))
    assert not any(ch for _, ch in changed(r))


@pytest.fixture
def box(make_container, agent_binary):
    return make_container([(PB_DIR, PB_AT)], agent=agent_binary, defaults=False)


def test_hostname_and_timezone(box):
    c = box
    old_name = c.run("hostnamectl --static").stdout.strip()
    old_zone = c.run("readlink /etc/localtime").stdout.strip()
    r = c.converge(PB_AT, playbook="system.yml", check=True)
    assert r.rc == 2, failed(r)
    assert changed(r) == [("host name", True), ("its facts", True), ("time zone", True)]
    assert c.run("hostnamectl --static").stdout.strip() == old_name
    assert c.run("readlink /etc/localtime").stdout.strip() == old_zone

    r = c.converge(PB_AT, playbook="system.yml")
    assert r.rc == 2, failed(r)
    assert changed(r) == [("host name", True), ("its facts", True), ("time zone", True)]
    assert c.run("hostnamectl --static").stdout.strip() == "gatest-renamed"
    assert c.run("hostname").stdout.strip() == "gatest-renamed"
    assert c.read_file("/etc/hostname") == "gatest-renamed\n"
    assert c.read_file("/root/hostname_result.txt") == "gatest-renamed|gatest-renamed|gatest-renamed\n"
    assert c.run("readlink /etc/localtime").stdout.strip().endswith("zoneinfo/Europe/Paris")
    assert "Time zone: Europe/Paris" in c.run("timedatectl status").stdout

    r = c.converge(PB_AT, playbook="system.yml")
    assert r.rc == 0, failed(r)
    assert not any(ch for _, ch in changed(r)), "second run changes nothing"


def test_locale_gen_without_the_locales_package(box):
    """The test image has no `locales` package (its data is dropped to keep it small): the task
    fails with Ansible's message and nothing is written."""
    c = box
    assert not c.exists("/etc/locale.gen")
    r = c.converge(PB_AT, playbook="locale.yml")
    assert r.rc == 1, failed(r)
    assert r.raw["tasks"][0]["msg"] == (
        "/var/lib/locales/supported.d and /etc/locale.gen are missing. Is the package \"locales\" installed?")
    assert not c.exists("/etc/locale.gen")


def debian_state(c) -> dict:
    return {
        "alternatives": c.run("update-alternatives --query gatest-editor || true").stdout,
        "link": c.run("readlink -e /usr/local/bin/gatest-editor || true").stdout.strip(),
        "debconf": c.run("debconf-show tzdata | grep Areas || true").stdout.strip(),
        "diversions": c.run("dpkg-divert --list /etc/gatest.conf").stdout.strip(),
    }


def test_alternatives_debconf_dpkg_divert(box):
    c = box
    c.run("echo 'tzdata tzdata/Areas select Etc' | debconf-set-selections")
    before = debian_state(c)
    assert before["link"] == "" and before["diversions"] == "", before
    tasks = ["a second alternative, present only", "the lower one selected", "a debconf answer", "its result",
             "a local diversion", "its diversion"]
    r = c.converge(PB_AT, playbook="debian.yml", check=True)
    assert r.rc == 2, failed(r)
    assert changed(r) == [(t, True) for t in tasks]
    assert debian_state(c) == before

    r = c.converge(PB_AT, playbook="debian.yml")
    assert r.rc == 2, failed(r)
    assert changed(r) == [(t, True) for t in tasks]
    st = debian_state(c)
    assert st["link"] == "/usr/bin/true", st
    assert "Status: manual" in st["alternatives"] and "Priority: 20" in st["alternatives"], st
    assert st["debconf"].endswith("tzdata/Areas: Europe"), st
    assert st["diversions"] == "local diversion of /etc/gatest.conf to /etc/gatest.conf.distrib", st
    assert c.read_file("/root/debconf_result.txt") == "Europe\n"
    assert c.read_file("/root/divert_result.txt") == "present /etc/gatest.conf.distrib LOCAL\n"

    r = c.converge(PB_AT, playbook="debian.yml")
    assert r.rc == 0, failed(r)
    assert not any(ch for _, ch in changed(r)), "second run changes nothing"

    r = c.converge(PB_AT, playbook="debian_off.yml")
    assert r.rc == 2, failed(r)
    assert changed(r) == [("back to auto", True), ("one alternative removed", True), ("diversion removed", True)]
    st = debian_state(c)
    assert st["link"] == "/usr/bin/false" and "Status: auto" in st["alternatives"], st
    assert "/usr/bin/true" not in st["alternatives"] and st["diversions"] == "", st
    r = c.converge(PB_AT, playbook="debian_off.yml")
    assert r.rc == 0 and not any(ch for _, ch in changed(r)), failed(r)


FSTAB_SEED = """\
# /etc/fstab: static file system information.
/dev/sda1 / ext4 errors=remount-ro 0 1
/dev/sdb1 {root}/srv ext4 defaults
LABEL=var {root}/var ext4 defaults 0 2 # trailing comment

/dev/sdy1 none swap sw 0 0
/dev/sdd1 {root}/old ext4 defaults 0 0
/dev/sde1 {root}/older ext4 defaults 0 0
"""


def test_mount_fstab_differential(tmp_path, monkeypatch, posix_collection):  # noqa: F811
    """The fstab edits of `mount` (present/absent/absent_from_fstab with `fstab:` in a scratch
    root, nothing mounted) through ansible-core + ansible.posix and through the agent, on this
    machine: same files, same per-task results, check mode and the second run change nothing."""
    import harness
    from harness import run_agent, run_ansible, snapshot, tree_diff

    monkeypatch.setenv("ANSIBLE_COLLECTIONS_PATH", str(posix_collection))
    pbdir = PB_DIR / "fstab"
    roots = {}
    for tool in ("ansible", "agent"):
        root = tmp_path / tool
        (root / "etc").mkdir(parents=True)
        (root / "etc" / "fstab").write_text(FSTAB_SEED.format(root=root))
        roots[tool] = root
    work = tmp_path / "work"
    work.mkdir()

    def both(**kw):
        a = run_ansible(pbdir, roots["ansible"], work, **kw)
        g = run_agent(pbdir, roots["agent"], **kw)
        assert a.rc == 0, a.describe()
        assert g.rc in (0, 2), g.describe()
        assert g.pairs() == harness.ansible_pairs(a), f"{kw}: {g.pairs()} != {harness.ansible_pairs(a)}"
        diff = tree_diff(snapshot(roots["ansible"]), snapshot(roots["agent"]))
        assert not diff, "\n".join(diff)
        return g

    seeded = snapshot(roots["agent"])
    g = both(check=True)
    assert [c for _, _, c in g.pairs()] == [True] * 8
    assert snapshot(roots["agent"]) == seeded, "check mode changed nothing"
    g = both()
    assert [c for _, _, c in g.pairs()] == [True] * 8
    r = roots["agent"]
    assert (r / "etc" / "fstab").read_text() == (
        "# /etc/fstab: static file system information.\n"
        "/dev/sda1 / ext4 errors=remount-ro 0 1\n"
        f"/dev/sdb1 {r}/srv ext4 defaults 0 0\n"
        f"LABEL=var {r}/var ext4 defaults,nodev 0 2\n"
        "\n"
        "/dev/sdy1 none swap sw 0 0\n"
        f"/dev/sdc1 {r}/mnt/my\\040data\\046more xfs noatime 1 2\n"
        f"tmpfs {r}/tmp tmpfs size=10m,noauto 0 0\n"
        "/dev/sdz2 none swap sw 0 0\n")
    g = both()
    assert not any(c for _, _, c in g.pairs()), "second run changes nothing"


def system_state(c) -> dict:
    """What system.yml, debian.yml and debian_off.yml manage, and the results they record."""
    st = debian_state(c)
    st.update({
        "static": c.run("hostnamectl --static").stdout.strip(),
        "kernel": c.run("hostname").stdout.strip(),
        "etc_hostname": c.read_file("/etc/hostname"),
        "localtime": c.run("readlink /etc/localtime").stdout.strip(),
        "results": c.run("cat /root/*_result.txt 2>/dev/null || true").stdout,
    })
    return st


def test_system_modules_against_ansible(make_container, agent_binary, general_collection):
    """hostname, timezone (community.general), alternatives, debconf and dpkg_divert: the same
    playbooks through ansible-core + community.general in one container and the agent in
    another; same per-task results and the same system state after check mode, the first and
    the second run."""
    coll = str(general_collection)
    env = {"ANSIBLE_COLLECTIONS_PATH": coll}
    g = make_container([(PB_DIR, PB_AT)], agent=agent_binary, defaults=False)
    a = make_container([(PB_DIR, PB_AT), (general_collection, coll)], agent=False, defaults=False, ansible=True)
    for c in (a, g):
        c.run("echo 'tzdata tzdata/Areas select Etc' | debconf-set-selections")
    for playbook in ("system.yml", "debian.yml", "debian_off.yml"):
        before = system_state(g)
        assert system_state(a) == before, playbook
        runs = [("check", True, (0, 2)), ("run 1", False, (0, 2)), ("run 2", False, (0, 0))]
        for what, check, (rc_a, rc_g) in runs:
            ra = a.ansible_playbook(PB_AT, playbook=playbook, env=env, check=check)
            rg = g.converge(PB_AT, playbook=playbook, check=check)
            assert ra.rc == rc_a, failed(ra)
            assert rg.rc == rc_g, failed(rg)
            assert changed(rg) == changed(ra), f"{playbook} {what}"
            sa, sg = system_state(a), system_state(g)
            assert sg == sa, f"{playbook} {what}: agent {sg} != ansible {sa}"
            if check:
                assert sg == before, f"{playbook}: check mode changed nothing"
        assert not any(ch for _, ch in changed(rg)), f"{playbook}: second run changes nothing"
    # Without the `locales` package, and without /proc/modules (a container shows the host's, and
    # this machine kind has none): both fail the same way, nothing written.
    for playbook, msg in (("locale.yml", "/etc/locale.gen are missing. Is the package"),
                          ("modprobe.yml", "[Errno 2] No such file or directory: '/proc/modules'")):
        if playbook == "modprobe.yml" and g.exists("/proc/modules"):
            continue  # a kernel with modules: the container cannot load them either; unit tests only
        before = system_state(g)
        ra = a.ansible_playbook(PB_AT, playbook=playbook, env=env)
        rg = g.converge(PB_AT, playbook=playbook)
        assert (ra.rc, rg.rc) == (2, 1), failed(ra) + failed(rg)
        assert changed(rg) == changed(ra)
        assert msg in rg.raw["tasks"][0]["msg"], failed(rg)
        assert msg in ra.stdout, failed(ra)
        assert system_state(g) == system_state(a) == before
        assert not g.exists("/etc/modules-load.d/dummy.conf") and not g.exists("/etc/locale.gen")


def test_debops_dpkg_divert(box):
    """`debops.debops.dpkg_divert` (DebOps' own module: `rename` by default, `.dpkg-divert`
    suffix for local diversions, `delete`)."""
    c = box
    c.write_file("/etc/gatest-d.conf", "ours\n")
    for state in ("present", "absent"):
        ev = ["-e", f"state={state}"]
        before = (c.run("dpkg-divert --list /etc/gatest-d.conf").stdout, c.run("ls /etc/gatest-d.conf*").stdout)
        r = c.converge(PB_AT, ev, playbook="debops_divert.yml", check=True)
        assert r.rc == 2 and changed(r)[0] == ("a DebOps diversion", True), failed(r)
        assert (c.run("dpkg-divert --list /etc/gatest-d.conf").stdout, c.run("ls /etc/gatest-d.conf*").stdout) == before
        r = c.converge(PB_AT, ev, playbook="debops_divert.yml")
        assert r.rc == 2 and changed(r) == [("a DebOps diversion", True)], failed(r)
        r2 = c.converge(PB_AT, ev, playbook="debops_divert.yml")
        assert r2.rc == 0 and not any(ch for _, ch in changed(r2)), failed(r2)
        if state == "present":
            assert c.run("dpkg-divert --list /etc/gatest-d.conf").stdout.strip() == (
                "local diversion of /etc/gatest-d.conf to /etc/gatest-d.conf.dpkg-divert")
            assert c.read_file("/etc/gatest-d.conf.dpkg-divert") == "ours\n"
            assert not c.exists("/etc/gatest-d.conf")
        else:
            assert c.run("dpkg-divert --list /etc/gatest-d.conf").stdout == ""
            assert c.read_file("/etc/gatest-d.conf") == "ours\n"
