#!/usr/bin/env python3
"""No-op benchmark: agent vs ansible-playbook on a generated playbook.

Generates 400 copy (content and src from files/ mixed), 50 template, 20 file state=directory,
10 file state=link and 5 file state=absent tasks, all under a scratch root; converges once with each
tool, then times the no-op second run (agent: --agent-runs, default 20; ansible: --ansible-runs,
default 3; 0 skips ansible altogether). Prints both medians, the ratio and the agent's peak RSS
(/usr/bin/time -f %M). `--baseline OTHER_BINARY` times another build (say, the last release) on
the same playbook, runs interleaved, and prints agent/baseline.
Targets: agent no-op <= 50 ms, >= 1000x faster than ansible, peak RSS < 15 MiB.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "lib"))
import harness  # noqa: E402

N_COPY, N_TEMPLATE, N_DIR, N_LINK, N_ABSENT = 400, 50, 20, 10, 5


def generate(pbdir: Path) -> None:
    (pbdir / "files").mkdir(parents=True)
    (pbdir / "templates").mkdir()
    tasks = []
    for d in range(N_DIR):
        tasks.append({"name": f"dir {d}", "file": {"path": f"{{{{ root }}}}/d{d:02}", "state": "directory",
                                                   "mode": "0755"}})
    for i in range(N_COPY):
        d = i % N_DIR
        dest = f"{{{{ root }}}}/d{d:02}/copy{i:03}.conf"
        if i % 2 == 0:
            args = {"content": f"setting_{i} = {i * 7}\nother = value {i}\n", "dest": dest}
        else:
            (pbdir / "files" / f"src{i:03}.txt").write_text(f"file {i}\n" + "x" * (i % 50) + "\n")
            args = {"src": f"src{i:03}.txt", "dest": dest}
        if i % 3 == 0:
            args["mode"] = "0640"
        if i % 5 == 0:
            args["owner"] = "root"
            args["group"] = "daemon"
        tasks.append({"name": f"copy {i}", "copy": args})
    for t in range(N_TEMPLATE):
        (pbdir / "templates" / f"t{t:02}.j2").write_text(
            "# {{ app }} template %d\nport = {{ base_port + %d }}\n{%% for s in servers %%}\nserver {{ s }}\n"
            "{%% endfor %%}\nname = {{ app | upper }}\n" % (t, t))
        tasks.append({"name": f"template {t}", "template": {
            "src": f"t{t:02}.j2", "dest": f"{{{{ root }}}}/d{t % N_DIR:02}/tmpl{t:02}.conf", "mode": "0644"}})
    for k in range(N_LINK):
        i = k * N_DIR + k          # copy i lives in d{i % N_DIR} == d{k}
        tasks.append({"name": f"link {k}", "file": {
            "src": f"{{{{ root }}}}/d{k:02}/copy{i:03}.conf", "dest": f"{{{{ root }}}}/link{k:02}",
            "state": "link"}})
    for a in range(N_ABSENT):
        tasks.append({"name": f"absent {a}", "file": {"path": f"{{{{ root }}}}/gone{a}", "state": "absent"}})
    play = [{"hosts": "localhost", "gather_facts": False,
             "vars": {"app": "bench", "base_port": 8000, "servers": ["a", "b", "c"]},
             "tasks": tasks}]
    # JSON is valid YAML; keeps the generator free of a YAML dependency
    (pbdir / "site.yml").write_text(json.dumps(play, indent=1) + "\n")


def timed(argv, **kw) -> tuple[float, subprocess.CompletedProcess]:
    t0 = time.perf_counter()
    p = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL, **kw)
    return time.perf_counter() - t0, p


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--agent", default=str(REPO / "target" / "release" / "gitops-agent"))
    ap.add_argument("--agent-runs", type=int, default=20)
    ap.add_argument("--ansible-runs", type=int, default=3)
    ap.add_argument("--keep", action="store_true", help="keep the temp dir")
    ap.add_argument("--baseline", default=None,
                    help="another gitops-agent binary (e.g. an older build) timed on the same playbook, "
                         "its no-op runs interleaved with the agent's; prints the ratio")
    args = ap.parse_args()

    agent = Path(args.agent)
    tmp = Path(tempfile.mkdtemp(prefix="gitops-bench-"))
    try:
        pbdir = tmp / "repo"
        generate(pbdir)
        ra, rg = tmp / "root-ansible", tmp / "root-agent"
        ra.mkdir()
        rg.mkdir()
        ntasks = N_COPY + N_TEMPLATE + N_DIR + N_LINK + N_ABSENT
        print(f"generated {ntasks} tasks in {pbdir}")

        agent_argv = [str(agent), "converge", "--playbook-dir", str(pbdir), "--playbook", "site.yml",
                      "--host-name", "localhost", "-e", f"root={rg}", "--format", "json"]
        env = harness.ansible_env(tmp)
        env.pop("ANSIBLE_CALLBACKS_ENABLED", None)
        ans_argv = [str(harness.ansible_bin_dir() / "ansible-playbook"), "-c", "local", "-i", "localhost,",
                    "site.yml", "-e", f"root={ra}"]

        dt, p = timed(agent_argv)
        print(f"agent   first converge: {dt * 1000:.1f} ms rc={p.returncode}")
        if p.returncode not in (0, 2):
            print(p.stdout[-2000:], p.stderr[-2000:])
            return 1
        if args.ansible_runs > 0:
            dt, p = timed(ans_argv, cwd=pbdir, env=env)
            print(f"ansible first converge: {dt:.1f} s rc={p.returncode}")
            if p.returncode != 0:
                print(p.stdout[-3000:], p.stderr[-2000:])
                return 1

            same = harness.tree_diff(harness.snapshot(ra), harness.snapshot(rg))
            print("trees after first converge: " + ("identical" if not same else f"{len(same)} differences"))
            for line in same[:20]:
                print(line)

        base_argv = None
        if args.baseline:
            rb = tmp / "root-baseline"
            rb.mkdir()
            base_argv = [args.baseline] + agent_argv[1:]
            base_argv[base_argv.index(f"root={rg}")] = f"root={rb}"
            dt, p = timed(base_argv)
            print(f"baseline first converge: {dt * 1000:.1f} ms rc={p.returncode}")
            if p.returncode not in (0, 2):
                print(p.stdout[-2000:], p.stderr[-2000:])
                return 1

        agent_times, base_times = [], []
        for i in range(args.agent_runs):
            for argv, times, who in ((agent_argv, agent_times, "agent"), (base_argv, base_times, "baseline")):
                if argv is None:
                    continue
                dt, p = timed(argv)
                if p.returncode != 0:
                    print(f"{who} no-op run {i}: rc={p.returncode} (expected 0: nothing to change)")
                    print(p.stdout[-1500:], p.stderr[-1500:])
                    return 1
                times.append(dt)
        rss_kib = None
        if Path("/usr/bin/time").exists():
            p = subprocess.run(["/usr/bin/time", "-f", "%M"] + agent_argv, capture_output=True, text=True)
            try:
                rss_kib = int(p.stderr.strip().splitlines()[-1])
            except (ValueError, IndexError):
                pass
        ans_times = []
        for i in range(args.ansible_runs):
            dt, p = timed(ans_argv, cwd=pbdir, env=env)
            if p.returncode != 0 or "changed=0" not in p.stdout:
                print(f"ansible no-op run {i}: rc={p.returncode}, not a no-op?")
                print(p.stdout[-1500:])
            ans_times.append(dt)

        gm = statistics.median(agent_times)
        print()
        print(f"agent   no-op median: {gm * 1000:8.1f} ms  (n={len(agent_times)}, min {min(agent_times) * 1000:.1f}, "
              f"max {max(agent_times) * 1000:.1f})   target <= 50 ms: {'OK' if gm <= 0.05 else 'MISSED'}")
        if base_times:
            bm = statistics.median(base_times)
            print(f"baseline no-op median: {bm * 1000:7.1f} ms  (n={len(base_times)}, interleaved)")
            print(f"ratio agent/baseline: {gm / bm:8.2f}")
        if ans_times:
            am = statistics.median(ans_times)
            print(f"ansible no-op median: {am * 1000:8.1f} ms  (n={len(ans_times)})")
            print(f"ratio ansible/agent:  {am / gm:8.0f}x   target >= 1000x: {'OK' if am / gm >= 1000 else 'MISSED'}")
        if rss_kib is not None:
            print(f"agent peak RSS:       {rss_kib / 1024:8.1f} MiB target < 15 MiB: "
                  f"{'OK' if rss_kib < 15 * 1024 else 'MISSED'}")
        else:
            print("agent peak RSS:       n/a (install `time`: apt-get install time)")
        return 0
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
