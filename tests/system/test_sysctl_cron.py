"""sysctl (file + live value, `sysctl -w`, `sysctl -p`) and cron on user crontabs (`crontab -l`,
`crontab [-u USER] FILE`) against a real system: inside throwaway systemd-nspawn containers
(their own network namespace, where net.* parameters are the container's own; the test makes
the container's /proc/sys/net writable, nothing else).

The agent converges tests/system/sysctl_cron/local.yml in one container, ansible-core (with the
ansible.posix collection for sysctl) in another, from the same seeded state: the same per-task
`changed`, the same files, live values and crontabs; the second run changes nothing for both.

`cron` is not in the test root filesystem: its two .debs are fetched once on the host with
`apt-get download` (a Debian bookworm host, as tests/setup-host.sh expects) and installed in each
container with dpkg.
"""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from pkgrepo import cache_dir, file_lock
from test_accounts import posix_collection  # noqa: F401  (a fixture)

PB_DIR = Path(__file__).resolve().parent / "sysctl_cron"
PB_AT = "/srv/pb"
DEBS_AT = "/srv/cron-debs"
CRON_DEBS = ("cron", "cron-daemon-common")


@pytest.fixture(scope="session")
def cron_debs() -> Path:
    dest = cache_dir() / "cron-debs"
    with file_lock(cache_dir() / ".cron-debs.lock"):
        if len(list(dest.glob("*.deb"))) < len(CRON_DEBS):
            dest.mkdir(parents=True, exist_ok=True)
            p = subprocess.run(["apt-get", "download", *CRON_DEBS], cwd=dest, capture_output=True,
                               text=True, timeout=300)
            if p.returncode != 0:
                pytest.skip(f"cannot fetch the cron .debs with apt-get download: {p.stderr[-400:]}")
    return dest


def seed(c):
    """The same starting state in both containers: cron installed, a seeded sysctl file, an
    obsolete managed job in root's crontab, live values away from the desired ones."""
    # maintainer scripts start nothing (TESTING.md); cron's postinst would start the daemon
    c.write_file("/usr/sbin/policy-rc.d", "#!/bin/sh\nexit 101\n", mode=0o755)
    c.run(f"dpkg -i --force-depends {DEBS_AT}/*.deb >/tmp/dpkg.log 2>&1 || true")
    # nspawn mounts /proc/sys read-only; the container has its own network namespace, so its
    # net.* parameters are its own: make that subtree writable for sysctl -w / sysctl -p.
    c.run("mount --bind /proc/sys/net /proc/sys/net && mount -o remount,bind,rw /proc/sys/net")
    assert c.run("command -v crontab", check=False).returncode == 0, c.run("cat /tmp/dpkg.log").stdout
    c.run("mkdir -p /var/spool/cron/crontabs")
    c.write_file("/etc/sysctl.d/91-gatest.conf", "# seeded\nnet.ipv4.conf.all.rp_filter = 2\n")
    c.run(["sysctl", "-w", "net.ipv4.ip_forward=0"])
    c.run(["sysctl", "-w", "net.ipv4.ping_group_range=1 0"])
    c.run("printf '#Ansible: obsolete\\n* * * * * /bin/old\\n' | crontab -")


def end_state(c) -> dict[str, str]:
    def out(cmd):
        r = c.run(cmd, check=False)
        return f"rc={r.returncode}\n{r.stdout}"
    return {
        "90-gatest.conf": c.read_file("/etc/sysctl.d/90-gatest.conf"),
        "91-gatest.conf": c.read_file("/etc/sysctl.d/91-gatest.conf"),
        "ip_forward": out("sysctl -n net.ipv4.ip_forward"),
        "ping_group_range": out("sysctl -n net.ipv4.ping_group_range"),
        "root crontab": out("crontab -l"),
        "nobody crontab": out("crontab -u nobody -l"),
    }


def changed(run) -> list[tuple[str, bool]]:
    return [(t["name"], t["changed"]) for t in run.tasks]


def test_sysctl_and_user_crontabs_like_ansible(make_container, agent_binary, cron_debs, posix_collection):  # noqa: F811
    coll = str(posix_collection)
    env = {"ANSIBLE_COLLECTIONS_PATH": coll}
    binds = [(PB_DIR, PB_AT), (cron_debs, DEBS_AT)]
    g = make_container(binds, agent=agent_binary, defaults=False)
    a = make_container(binds + [(posix_collection, coll)], agent=False, defaults=False, ansible=True)
    for c in (g, a):
        seed(c)

    rg = g.converge(PB_AT, playbook="local.yml")
    ra = a.ansible_playbook(PB_AT, playbook="local.yml", env=env)
    assert ra.rc == 0, ra.stdout[-3000:] + ra.stderr[-2000:]
    assert rg.rc == 2, rg.stdout[-3000:] + rg.stderr[-2000:]
    assert changed(rg) == changed(ra)
    assert all(ch for _, ch in changed(rg)), changed(rg)

    sg, sa = end_state(g), end_state(a)
    assert sg == sa
    assert sg["90-gatest.conf"] == ("net.ipv4.ip_forward=1\nnet.ipv4.ping_group_range=0 1000\n"
                                    "net.ipv4.tcp_syncookies=1\n")
    assert sg["91-gatest.conf"] == "# seeded\n"
    assert sg["ip_forward"] == "rc=0\n1\n"
    assert sg["ping_group_range"].split() == ["rc=0", "0", "1000"]
    assert sg["root crontab"] == ("rc=0\nMAILTO=\"ops@example.com\"\n#Ansible: nightly\n"
                                  "5 1 * * * /usr/local/bin/nightly\n")
    assert sg["nobody crontab"] == "rc=0\n#Ansible: report\n@weekly /usr/bin/report\n"

    # A drift of the live value: both set it back (sysctl -w), the file is left alone.
    for c in (g, a):
        c.run(["sysctl", "-w", "net.ipv4.ip_forward=0"])
    rg = g.converge(PB_AT, playbook="local.yml")
    ra = a.ansible_playbook(PB_AT, playbook="local.yml", env=env)
    assert changed(rg) == changed(ra), (changed(rg), changed(ra))
    assert [n for n, ch in changed(rg) if ch] == ["a kernel parameter in its own file, set live and reloaded"]
    assert end_state(g) == end_state(a) == sg

    # The second run changes nothing.
    rg = g.converge(PB_AT, playbook="local.yml")
    ra = a.ansible_playbook(PB_AT, playbook="local.yml", env=env)
    assert rg.rc == 0, rg.stdout[-3000:] + rg.stderr[-2000:]
    assert ra.rc == 0
    assert not any(ch for _, ch in changed(rg) + changed(ra)), (changed(rg), changed(ra))
    assert end_state(g) == sg
