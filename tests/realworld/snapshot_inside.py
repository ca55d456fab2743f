"""Run INSIDE a corpus container (python3 - MARKER < this file): prints one JSON document of the
state a converge can change: every path under /etc and every other path whose ctime is not older
than MARKER (both sides start from the same image, so that covers what either converge touched),
plus packages, users, groups, enabled units and running services.

Volatile paths (logs, caches, APT/dpkg/systemd state, the tools' own dirs) are left out; files whose
content is random by design (SSH host keys) keep their metadata but not their hash; password hashes
in /etc/shadow are masked (random salts)."""
import hashlib
import json
import os
import stat
import subprocess
import sys

EXCLUDE = ("/proc", "/sys", "/dev", "/run", "/tmp", "/var/tmp", "/var/log", "/var/cache", "/var/lib/apt",
           "/var/lib/dpkg", "/var/lib/systemd", "/var/lib/gitops-agent", "/var/backups", "/root/.ansible",
           "/root/.cache", "/root/.rpmdb", "/srv/pull", "/srv/gatest-apt", "/usr/local/lib/gatest-tests-lib",
           "/usr/local/bin/gitops-agent", "/usr/local/bin/gitops-agentd", "/etc/ld.so.cache",
           "/var/lib/ucf/cache", "/etc/machine-id")
NO_CONTENT_PREFIX = ("/etc/ssh/ssh_host_",)
MAX_TEXT = 32 * 1024


def names(root="/"):
    """uid -> user name, gid -> group name, from ROOT's /etc/passwd and /etc/group."""
    users, groups = {}, {}
    for line in open(os.path.join(root, "etc/passwd")):
        f = line.rstrip("\n").split(":")
        if len(f) > 2:
            users[int(f[2])] = f[0]
    for line in open(os.path.join(root, "etc/group")):
        f = line.rstrip("\n").split(":")
        if len(f) > 2:
            groups[int(f[2])] = f[0]
    return users, groups


def _content(path, data):
    if path in ("/etc/shadow", "/etc/shadow-", "/etc/gshadow", "/etc/gshadow-"):
        out = []
        for line in data.decode(errors="replace").splitlines():
            f = line.split(":")
            if len(f) > 1 and f[1].startswith("$"):
                f[1] = "<hash>"
            out.append(":".join(f))
        data = ("\n".join(out) + "\n").encode()
    return data


def entry(path, st, users, groups, real=None):
    """What is compared of PATH (REAL: where to read it, when not at PATH itself)."""
    real = real or path
    e = {"type": "other", "mode": oct(stat.S_IMODE(st.st_mode)),
         "owner": users.get(st.st_uid, st.st_uid), "group": groups.get(st.st_gid, st.st_gid)}
    if stat.S_ISLNK(st.st_mode):
        e["type"], e["target"] = "link", os.readlink(real)
    elif stat.S_ISDIR(st.st_mode):
        e["type"] = "dir"
    elif stat.S_ISREG(st.st_mode):
        e["type"] = "file"
        if not path.startswith(NO_CONTENT_PREFIX):
            with open(real, "rb") as f:
                data = _content(path, f.read())
            e["sha256"] = hashlib.sha256(data).hexdigest()
            if len(data) <= MAX_TEXT and b"\0" not in data:
                e["text"] = data.decode(errors="replace")
    return e


def files(marker_ns):
    """(the entries of /etc and of what changed since the marker, every path that exists)."""
    users, groups = names()
    root_dev = os.lstat("/").st_dev
    out, every = {}, []
    for dirpath, dirnames, filenames in os.walk("/"):
        keep = []
        for d in dirnames:
            p = os.path.join(dirpath, d)
            if p.startswith(EXCLUDE) or d == "__pycache__":
                continue
            try:
                if os.lstat(p).st_dev != root_dev:
                    continue
            except OSError:
                continue
            keep.append(d)
        dirnames[:] = keep
        for n in keep + filenames:
            p = os.path.join(dirpath, n)
            if p.startswith(EXCLUDE) or n.endswith(".pyc"):
                continue
            try:
                st = os.lstat(p)
            except OSError:
                continue
            every.append(p)
            if p.startswith("/etc/") or st.st_ctime_ns >= marker_ns:
                try:
                    out[p] = entry(p, st, users, groups)
                except OSError as e:
                    out[p] = {"type": "unreadable", "error": str(e)}
    return out, every


def lines(argv):
    p = subprocess.run(argv, capture_output=True, text=True)
    return sorted(x.strip() for x in p.stdout.splitlines() if x.strip())


def main():
    marker_ns = os.stat(sys.argv[1]).st_ctime_ns
    changed, every = files(marker_ns)
    doc = {
        "files": changed,
        "all": every,
        "packages": lines(["dpkg-query", "-W", "-f", "${binary:Package} ${Version} ${db:Status-Abbrev}\n"]),
        "users": [":".join(x.split(":")[:1] + x.split(":")[2:]) for x in lines(["getent", "passwd"])],
        "groups": lines(["getent", "group"]),
        "enabled_units": [x.split()[0] for x in lines(["systemctl", "list-unit-files", "--state=enabled",
                                                        "--no-legend", "--plain", "--no-pager"])],
        "running_services": [x.split()[0] for x in lines(["systemctl", "list-units", "--type=service",
                                                           "--state=running", "--no-legend", "--plain",
                                                           "--no-pager"])],
    }
    sys.stdout.write(json.dumps(doc))


if __name__ == "__main__":
    main()
