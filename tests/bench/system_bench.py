"""No-op check of 9 installed packages + 5 services + 10 users, agent vs ansible-playbook, inside a
booted bookworm container (systemd as PID 1, own netns; see tests/lib/container.py).

Prints:
  - the agent's no-op converge of the whole playbook (median of N) and ansible-playbook's (median
    of M), and the ratio;
  - the agent's no-op converge of the 9 apt tasks alone, less that of an empty playbook (process
    start, load, report), beside one `dpkg-query -W` of the same 9 packages (the issue's target:
    the package check costs no more than that query);
  - the agent with the 5 service tasks alone beside one `systemctl show` of the same 5 units.

Run by hand through tests/bench/system_bench.sh (not part of tests/run-all.sh).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import textwrap
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "lib"))

import container as ct  # noqa: E402

PACKAGES = ["bash", "coreutils", "dpkg", "apt", "systemd", "dbus", "procps", "iproute2", "passwd"]
UNITS = [f"gabench-{i}" for i in range(1, 6)]
USERS = [f"gabench{i:02d}" for i in range(1, 11)]
PB = "/srv/pb"


def playbooks(d: Path):
    unit = "[Unit]\nDescription=bench %i\n[Service]\nExecStart=/bin/sleep infinity\n[Install]\nWantedBy=multi-user.target\n"
    setup = ["- hosts: all\n  gather_facts: false\n  tasks:\n"]
    for u in UNITS:
        setup.append(f"    - copy: {{dest: /etc/systemd/system/{u}.service, content: {json.dumps(unit)}}}\n")
    setup.append("    - systemd: daemon_reload=yes\n")
    (d / "setup.yml").write_text("".join(setup))

    pkgs = "".join(f"    - name: pkg {p}\n      apt: name={p}\n" for p in PACKAGES)
    svcs = "".join(f"    - name: svc {u}\n      systemd: name={u} state=started enabled=yes\n" for u in UNITS)
    users = "".join(f"    - name: user {u}\n      user: name={u} shell=/bin/bash groups=users append=yes\n"
                    for u in USERS)
    head = "- hosts: all\n  gather_facts: false\n  tasks:\n"
    (d / "all.yml").write_text(head + pkgs + svcs + users)
    (d / "pkgs.yml").write_text(head + pkgs)
    (d / "svcs.yml").write_text(head + svcs)
    (d / "empty.yml").write_text("- hosts: all\n  gather_facts: false\n  tasks: []\n")


def timed(fn, n: int) -> list[float]:  # host-side timing (ansible-playbook)
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--agent-runs", type=int, default=20)
    ap.add_argument("--ansible-runs", type=int, default=3)
    ap.add_argument("--agent", default=str(HERE.parent.parent / "target" / "release" / "gitops-agent"))
    args = ap.parse_args()

    rootfs = ct.build_rootfs()
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        playbooks(d)
        with ct.Container(rootfs, [(d, PB)], agent=Path(args.agent), ansible=True) as c:
            for pb in ("setup.yml", "all.yml"):
                r = c.converge(PB, playbook=pb)
                if r.rc not in (0, 2):
                    print(r.stdout, r.stderr)
                    return 1
            r = c.converge(PB, playbook="all.yml")
            if r.rc != 0:
                print("the second converge changed something:\n" + r.stdout)
                return 1

            def inside(argv: list[str], n: int) -> list[float]:
                """Times N runs of ARGV from inside the container (no nsenter per run)."""
                script = ("import json,subprocess,sys,time\n"
                          "argv=json.loads(sys.argv[1]); out=[]\n"
                          "for _ in range(int(sys.argv[2])):\n"
                          "    t=time.perf_counter(); subprocess.run(argv,check=True,stdout=subprocess.DEVNULL)\n"
                          "    out.append(time.perf_counter()-t)\n"
                          "print(json.dumps(out))\n")
                r = c.run(["python3", "-c", script, json.dumps(argv), str(n)])
                return json.loads(r.stdout)

            def agent(pb):
                return [ct.AGENT_PATH, "converge", "--playbook-dir", PB, "--playbook", pb, "--format", "json"]

            n = args.agent_runs
            a_all = inside(agent("all.yml"), n)
            a_pkgs = inside(agent("pkgs.yml"), n)
            a_svcs = inside(agent("svcs.yml"), n)
            a_true = inside(["true"], n)
            a_empty = inside(agent("empty.yml"), n)
            q_dpkg = inside(["dpkg-query", "-W", *PACKAGES], n)
            q_sysd = inside(["systemctl", "show", "-p", "ActiveState,UnitFileState",
                             *[u + ".service" for u in UNITS]], n)

            def ansible():
                r = c.ansible_playbook(PB, playbook="all.yml")
                if r.rc != 0 or any(t["changed"] for t in r.tasks):
                    raise SystemExit("ansible-playbook no-op run failed or changed something:\n" + r.stdout[-3000:])
            s_all = timed(ansible, args.ansible_runs)

    med = statistics.median
    ms = lambda xs: med(xs) * 1000  # noqa: E731
    print(f"tasks: {len(PACKAGES)} apt + {len(UNITS)} systemd + {len(USERS)} user (no-op, in a container;"
          f" each figure a median of process runs timed inside it)")
    print(f"agent converge, all 24 tasks:    {ms(a_all):8.1f} ms  (median of {len(a_all)})")
    print(f"ansible-playbook, same playbook: {ms(s_all):8.1f} ms  (median of {len(s_all)})")
    print(f"ratio ansible/agent:             {ms(s_all) / ms(a_all):8.0f}x")
    print(f"spawning /bin/true:              {ms(a_true):8.1f} ms")
    print(f"agent converge, empty playbook:  {ms(a_empty):8.1f} ms  (process start, load, report)")
    pk = ms(a_pkgs) - ms(a_empty)
    sv = ms(a_svcs) - ms(a_empty)
    print(f"agent converge, 9 apt tasks:     {ms(a_pkgs):8.1f} ms  -> package check {pk:.1f} ms")
    print(f"dpkg-query -W of the 9 packages: {ms(q_dpkg):8.1f} ms  (package check / dpkg-query {pk / ms(q_dpkg):.2f})")
    print(f"agent converge, 5 systemd tasks: {ms(a_svcs):8.1f} ms  -> unit check {sv:.1f} ms")
    print(f"systemctl show of the 5 units:   {ms(q_sysd):8.1f} ms  (unit check / systemctl show {sv / ms(q_sysd):.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
