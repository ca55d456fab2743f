#!/usr/bin/env python3
"""Drift latency benchmark (run by hand, prints figures; not a test).

usage: drift_bench.py [--files 450] [--edits 20] [--idle-minutes 10] [--interval 1h] [--smaps] [--bin PATH]
                      [--keep]

Setup (temp dir): a bare repository over file:// whose branch `hosts/<short hostname>` holds a
`local.yml` of --files `copy` tasks (spread over 15 directories under a scratch root, a `root`
extra var), and a config with `interval: 1h` (--interval), so only the drift watch acts. The daemon
(`gitops-agent run`) converges once; then --edits times a random managed file is overwritten by
hand and the time until the agent has put its content back is measured (polled every 1 ms),
waiting for the drift pass to end between edits. Prints median, p90 and max latency (target of
the issue: median under 1 s), the number of drift passes the log shows, the daemon's RSS
(VmRSS/VmHWM) at the end, and the peak RSS of its workers (each poll and drift pass runs in a
short-lived `gitops-agent daemon-worker`; the daemon logs each one's getrusage ru_maxrss). With
--idle-minutes M, it then leaves the daemon alone for M minutes (the issue's figure: 10) and
prints its RSS at the end of that time and the CPU time used meanwhile (utime+stime of the
daemon, and cutime+cstime: its workers, from /proc/PID/stat); --interval 60s makes a worker poll
every minute meanwhile, as the default configuration does. With --smaps, it prints at the end what the
resident memory is made of (/proc/PID/smaps: the binary's text, read-only data and relocated
data, the shared libraries, the heap and the other anonymous mappings: malloc arenas and thread
stacks) and the daemon's threads. The daemon is stopped (SIGTERM, then SIGKILL) in every case.
"""
from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def git(cwd: Path, *args: str) -> str:
    out = subprocess.run(["git", "-c", "user.name=Bench", "-c", "user.email=bench@example.org", *args],
                         cwd=cwd, check=True, capture_output=True, text=True)
    return out.stdout.strip()


def default_bin() -> Path:
    for p in (REPO / "target/release/gitops-agent", REPO / "target/debug/gitops-agent"):
        if p.exists():
            return p
    sys.exit("build gitops-agent first (cargo build --release -p gitops-agent) or pass --bin")


def proc_status(pid: int) -> dict[str, str]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        k, _, v = line.partition(":")
        out[k] = v.strip()
    return out


def cpu_seconds(pid: int) -> tuple[float, float]:
    """(utime + stime of PID, cutime + cstime: its children waited for, i.e. the workers), in
    seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tck = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / tck, (int(fields[13]) + int(fields[14])) / tck


def smaps_breakdown(pid: int, binary: Path) -> list[str]:
    """What the resident memory of PID is made of, from /proc/PID/smaps: kB resident per kind
    of mapping (the binary by permission: r-x text, r-- read-only data and .data.rel.ro, rw-
    data; shared libraries; [heap]; anonymous mappings, i.e. thread stacks and malloc arenas;
    [stack]), and the process's threads."""
    groups: dict[str, list[int]] = {}
    key = None
    exe = os.path.realpath(f"/proc/{pid}/exe")
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        head = line.split()
        if "-" in head[0] and len(head) >= 5 and ":" in head[3]:
            perms = head[1]
            path = head[5] if len(head) > 5 else ""
            if path == exe or os.path.basename(path) == binary.name:
                key = f"binary {perms[:3]}"
            elif path.startswith("/"):
                key = f"{os.path.basename(path)} (all)"
            elif path:
                key = path
            else:
                key = "anonymous mappings (thread stacks, malloc arenas)"
            groups.setdefault(key, [0, 0, 0])
        elif key and head[0] in ("Rss:", "Anonymous:", "Private_Dirty:"):
            i = ("Rss:", "Anonymous:", "Private_Dirty:").index(head[0])
            groups[key][i] += int(head[1])
    out = [f"  {'mapping':<52} {'Rss kB':>8} {'anon kB':>8}"]
    for k, (rss, anon, _) in sorted(groups.items(), key=lambda kv: -kv[1][0]):
        if rss:
            out.append(f"  {k:<52} {rss:>8} {anon:>8}")
    names = []
    for t in sorted(Path(f"/proc/{pid}/task").iterdir()):
        names.append((t / "comm").read_text().strip())
    out.append(f"  threads: {len(names)} ({', '.join(names)})")
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=450)
    ap.add_argument("--edits", type=int, default=20)
    ap.add_argument("--bin", type=Path, default=None)
    ap.add_argument("--idle-minutes", type=float, default=0)
    ap.add_argument("--interval", default="1h",
                    help="the daemon's poll interval (default 1h: only the drift watch acts; "
                         "60s: the default config, a worker polls every minute)")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--smaps", action="store_true",
                    help="print the resident memory by mapping and the threads at the end")
    a = ap.parse_args()
    binary = a.bin or default_bin()
    host = Path("/proc/sys/kernel/hostname").read_text().strip().split(".")[0]
    tmp = Path(tempfile.mkdtemp(prefix="drift-bench-"))
    agent = None
    try:
        work, bare, root, state = tmp / "work", tmp / "fleet.git", tmp / "root", tmp / "state"
        work.mkdir()
        root.mkdir()
        git(tmp, "init", "-q", "--bare", str(bare))
        git(work, "init", "-q", "-b", f"hosts/{host}")
        lines = ["- hosts: all", "  gather_facts: false", "  tasks:"]
        for d in range(15):
            lines.append(f"    - file: {{path: \"{{{{ root }}}}/d{d:02}\", state: directory}}")
        for i in range(a.files):
            lines.append(f"    - copy: {{dest: \"{{{{ root }}}}/d{i % 15:02}/f{i:04}.conf\", "
                         f"content: \"managed {i}\\n\", mode: \"0644\"}}")
        (work / "local.yml").write_text("\n".join(lines) + "\n")
        git(work, "add", "-A")
        git(work, "commit", "-q", "-m", "bench")
        git(work, "push", "-q", str(bare), "HEAD")
        config = tmp / "config.yml"
        config.write_text(f"repo: file://{bare}\nstate_dir: {state}\ninterval: {a.interval}\nsplay: 0\n"
                          f"extra_vars:\n  root: {root}\n")
        log = tmp / "daemon.log"
        env = {k: v for k, v in os.environ.items()
               if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "JOURNAL_STREAM")}
        env["RUST_LOG"] = "info"
        agent = subprocess.Popen([str(binary), "run", "--config", str(config)], env=env,
                                 stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                 stderr=open(log, "w"))
        last = root / f"d{(a.files - 1) % 15:02}" / f"f{a.files - 1:04}.conf"
        end = time.monotonic() + 120
        while "poll: changed" not in log.read_text():
            if time.monotonic() > end or agent.poll() is not None:
                print(log.read_text())
                return 1
            time.sleep(0.05)
        assert last.exists()
        time.sleep(1.0)
        rng = random.Random(1)
        latencies = []
        for n in range(a.edits):
            i = rng.randrange(a.files)
            path = root / f"d{i % 15:02}" / f"f{i:04}.conf"
            want = f"managed {i}\n"
            before = log.read_text().count("drift check:")
            t0 = time.monotonic()
            path.write_text(f"edited by hand {n}\n")
            while True:
                try:
                    if path.read_text() == want:
                        break
                except FileNotFoundError:
                    pass
                if time.monotonic() - t0 > 10:
                    print(f"edit {n}: not put back after 10 s\n{log.read_text()}")
                    return 1
                time.sleep(0.001)
            latencies.append(time.monotonic() - t0)
            while log.read_text().count("drift check:") <= before and time.monotonic() - t0 < 10:
                time.sleep(0.01)
            time.sleep(1.1)  # drift passes start at least 1 s apart
        st = proc_status(agent.pid)
        ms = sorted(x * 1000 for x in latencies)
        print(f"binary: {binary}")
        print(f"managed files: {a.files} in 15 directories; edits: {a.edits}")
        print(f"edit -> corrected: median {statistics.median(ms):.0f} ms, "
              f"p90 {ms[int(len(ms) * 0.9) - 1]:.0f} ms, min {ms[0]:.0f} ms, max {ms[-1]:.0f} ms")
        passes = re.findall(r"drift check:.*took_ms=(\d+)", log.read_text())
        took = statistics.median(int(t) for t in passes) if passes else float("nan")
        print(f"drift passes logged: {len(passes)}, median {took:.0f} ms each")
        print(f"daemon RSS now {st.get('VmRSS')} (anonymous {st.get('RssAnon')}, file-backed "
              f"{st.get('RssFile')}), peak {st.get('VmHWM')}")
        peaks = sorted(int(k) for k in re.findall(r"worker_peak_kib=(\d+)", log.read_text()))
        if peaks:
            print(f"workers (one per poll or drift pass, {len(peaks)} so far): peak RSS median "
                  f"{statistics.median(peaks):.0f} kB, max {peaks[-1]} kB")
        if a.idle_minutes > 0:
            polls0 = log.read_text().count("poll: ")
            (cpu0, ccpu0) = cpu_seconds(agent.pid)
            time.sleep(a.idle_minutes * 60)
            (cpu1, ccpu1) = cpu_seconds(agent.pid)
            st = proc_status(agent.pid)
            polls = log.read_text().count("poll: ") - polls0
            print(f"idle {a.idle_minutes:g} min with {a.files} files watched (interval {a.interval}): "
                  f"RSS {st.get('VmRSS')} (anonymous {st.get('RssAnon')}, file-backed "
                  f"{st.get('RssFile')}), CPU time used {cpu1 - cpu0:.3f} s by the daemon, "
                  f"{ccpu1 - ccpu0:.3f} s by {polls} poll worker(s)")
        if a.smaps:
            print("resident memory by mapping (/proc/PID/smaps):")
            print("\n".join(smaps_breakdown(agent.pid, binary)))
        return 0
    finally:
        if agent is not None and agent.poll() is None:
            agent.send_signal(signal.SIGTERM)
            try:
                agent.wait(10)
            except subprocess.TimeoutExpired:
                agent.kill()
                agent.wait()
        if a.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
