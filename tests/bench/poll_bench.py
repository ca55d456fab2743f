#!/usr/bin/env python3
"""Poll benchmark (run by hand, prints figures; not a test): a no-change pull-mode poll against a
repository with 10 branches and with 20,000 branches, the agent beside `git fetch`.

usage: poll_bench.py [--runs 15] [--branches 20000] [--keep]

Setup (temp dir): a bare `fleet.git` whose branch `hosts/<short hostname>` holds a one-task
`local.yml`, plus 9 other branches; later 20,000 more branches added in one `git update-ref --stdin`
transaction and packed with `git pack-refs --all` (as a served repository after gc).
It is served over smart HTTP by agent/src/git/testdata/cgi_server.py (`git http-backend`), with a
small threaded TCP proxy in front that counts the bytes server -> client, so "bytes received" is
what crossed the wire (HTTP headers included).

Agent poll: `gitops-agent converge --repo URL --state-dir S --no-status --format json`, once to
warm (first fetch), then --runs timed no-change runs. Each one fetches, finds nothing new and
converges the one-task playbook, so its time includes that (few ms) converge.
git: `git clone --depth 1 --single-branch --branch hosts/<h>` once, then --runs timed
`git -C clone fetch origin hosts/<h>` (protocol v2, git's default).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
AGENT = REPO / "target" / "release" / "gitops-agent"
CGI_SERVER = REPO / "agent" / "src" / "git" / "testdata" / "cgi_server.py"
PLAYBOOK = "- hosts: all\n  gather_facts: false\n  tasks:\n    - debug: msg=hi\n"

# git runs with no user/system config, so the machine's settings do not change the figures.
GIT_ENV = dict(os.environ, GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL="/dev/null",
               GIT_AUTHOR_NAME="bench", GIT_AUTHOR_EMAIL="bench@example.invalid",
               GIT_COMMITTER_NAME="bench", GIT_COMMITTER_EMAIL="bench@example.invalid",
               GIT_TERMINAL_PROMPT="0")
for k in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_PROTOCOL"):
    GIT_ENV.pop(k, None)


def git(*args: str, cwd: Path | None = None, input: str | None = None) -> str:
    r = subprocess.run(["git", *args], cwd=cwd, env=GIT_ENV, input=input, text=True,
                       capture_output=True)
    if r.returncode != 0:
        raise RuntimeError(f"git {' '.join(args[:3])}... failed ({r.returncode}): {r.stderr.strip()}")
    return r.stdout.strip()


class CountingProxy:
    """127.0.0.1 TCP proxy, one thread per direction per connection; counts server -> client bytes."""

    def __init__(self, upstream_port: int):
        self.upstream = ("127.0.0.1", upstream_port)
        self.lock = threading.Lock()
        self.down = 0          # server -> client bytes since the last take()
        self.conns = 0
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self.accept_loop, daemon=True).start()

    def take(self) -> tuple[int, int]:
        with self.lock:
            out = (self.down, self.conns)
            self.down = self.conns = 0
            return out

    def accept_loop(self) -> None:
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.upstream)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.conns += 1
            threading.Thread(target=self.pipe, args=(client, server, False), daemon=True).start()
            threading.Thread(target=self.pipe, args=(server, client, True), daemon=True).start()

    def pipe(self, src: socket.socket, dst: socket.socket, count: bool) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if count:       # counted before forwarding: done by the time the client has it
                    with self.lock:
                        self.down += len(data)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (dst,):
                try:
                    s.shutdown(socket.SHUT_WR)
                except OSError:
                    pass

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


def timed(cmd: list[str], proxy: CountingProxy, env: dict | None = None) -> tuple[float, int, int]:
    proxy.take()
    t0 = time.perf_counter()
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    ms = (time.perf_counter() - t0) * 1000
    if r.returncode != 0:
        raise RuntimeError(f"{cmd[0]} {cmd[1]} failed ({r.returncode}):\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}")
    time.sleep(0.01)    # let the proxy's threads see the close (the bytes are already counted)
    down, conns = proxy.take()
    return ms, down, conns


def agent_cmd(url: str, state: Path) -> list[str]:
    return [str(AGENT), "converge", "--repo", url, "--state-dir", str(state), "--no-status",
            "--format", "json"]


def bench(label: int, url: str, branch: str, tmp: Path, proxy: CountingProxy, runs: int) -> list[dict]:
    rows = []
    # Agent: warm (first fetch, depth 1), then no-change polls.
    state = tmp / f"state-{label}"
    ms, down, _ = timed(agent_cmd(url, state), proxy)
    print(f"  [{label} branches] agent first fetch+converge: {ms:.0f} ms, {down} B", flush=True)
    r = subprocess.run(agent_cmd(url, state), capture_output=True, text=True)
    check_agent_output(r)
    times, downs, conns = [], [], set()
    for _ in range(runs):
        ms, down, c = timed(agent_cmd(url, state), proxy)
        times.append(ms), downs.append(down), conns.add(c)
    rows.append(dict(branches=label, tool="gitops-agent converge", times=times, downs=downs, conns=conns))

    # git: shallow single-branch clone, then no-change fetches of the same branch.
    clone = tmp / f"clone-{label}"
    ms, down, _ = timed(["git", "clone", "-q", "--depth", "1", "--single-branch", "--branch", branch,
                         url, str(clone)], proxy, env=GIT_ENV)
    print(f"  [{label} branches] git clone --depth 1: {ms:.0f} ms, {down} B", flush=True)
    times, downs, conns = [], [], set()
    for _ in range(runs):
        ms, down, c = timed(["git", "-C", str(clone), "fetch", "-q", "origin", branch], proxy, env=GIT_ENV)
        times.append(ms), downs.append(down), conns.add(c)
    rows.append(dict(branches=label, tool="git fetch origin <branch>", times=times, downs=downs, conns=conns))
    return rows


def check_agent_output(r: subprocess.CompletedProcess) -> None:
    if r.returncode != 0:
        raise RuntimeError(f"agent failed ({r.returncode}):\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--branches", type=int, default=20000, help="branches added for the large case")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir")
    args = ap.parse_args()

    if not AGENT.exists():
        subprocess.run(["cargo", "build", "--release", "-p", "gitops-agent"], cwd=REPO, check=True)
    host = socket.gethostname().split(".")[0]
    branch = f"hosts/{host}"

    tmp = Path(tempfile.mkdtemp(prefix="poll-bench-"))
    server = None
    proxy = None
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        root = tmp / "srv"
        bare = root / "fleet.git"
        root.mkdir()
        git("init", "-q", "--bare", "-b", "main", str(bare))
        work = tmp / "work"
        git("init", "-q", "-b", branch, str(work))
        (work / "local.yml").write_text(PLAYBOOK)
        git("add", "local.yml", cwd=work)
        git("commit", "-q", "-m", "playbook", cwd=work)
        git("push", "-q", str(bare), f"HEAD:refs/heads/{branch}", cwd=work)
        git("checkout", "-q", "--orphan", "other", cwd=work)
        (work / "local.yml").write_text(PLAYBOOK.replace("hi", "other"))
        git("add", "local.yml", cwd=work)
        git("commit", "-q", "-m", "other host", cwd=work)
        other = git("rev-parse", "HEAD", cwd=work)
        git("push", "-q", str(bare), *[f"HEAD:refs/heads/hosts/other-{i}" for i in range(9)], cwd=work)
        git("symbolic-ref", "HEAD", f"refs/heads/{branch}", cwd=bare)
        git("pack-refs", "--all", cwd=bare)

        log = tmp / "http.log"
        server = subprocess.Popen([sys.executable, str(CGI_SERVER), str(root), str(log)],
                                  stdout=subprocess.PIPE, text=True, start_new_session=True)
        line = server.stdout.readline().split()
        if len(line) != 2 or line[0] != "PORT":
            raise RuntimeError(f"cgi_server did not start: {line}")
        proxy = CountingProxy(int(line[1]))
        url = f"http://127.0.0.1:{proxy.port}/git/fleet.git"
        print(f"host branch {branch}; {args.runs} timed no-change polls per row; "
              f"{AGENT.relative_to(REPO)} (mtime {time.ctime(AGENT.stat().st_mtime)}); {git('--version')}",
              flush=True)

        rows = []
        n_small = len(git("for-each-ref", "refs/heads", cwd=bare).splitlines())
        rows += bench(n_small, url, branch, tmp, proxy, args.runs)

        t0 = time.perf_counter()
        stdin = "start\n" + "".join(f"create refs/heads/hosts/h{i:05d} {other}\n"
                                    for i in range(args.branches)) + "commit\n"
        git("update-ref", "--stdin", cwd=bare, input=stdin)
        git("pack-refs", "--all", cwd=bare)
        n_large = len(git("for-each-ref", "refs/heads", cwd=bare).splitlines())
        print(f"  added {args.branches} branches in one transaction + pack-refs: "
              f"{(time.perf_counter() - t0) * 1000:.0f} ms; packed-refs {(bare / 'packed-refs').stat().st_size} B",
              flush=True)
        rows += bench(n_large, url, branch, tmp, proxy, args.runs)

        print()
        print("No-change poll (agent: fetch + the one-task converge, a few ms of it; git: fetch only)")
        print(f"{'branches':>8}  {'tool':<26} {'median ms':>9} {'min ms':>7} {'bytes/poll (median)':>20} {'HTTP conns':>10}")
        for r in rows:
            print(f"{r['branches']:>8}  {r['tool']:<26} {statistics.median(r['times']):>9.1f} "
                  f"{min(r['times']):>7.1f} {statistics.median(r['downs']):>20.0f} "
                  f"{'/'.join(map(str, sorted(r['conns']))):>10}")
        print()
        for tool in (rows[0]["tool"], rows[1]["tool"]):
            small = next(r for r in rows if r["tool"] == tool and r["branches"] == n_small)
            large = next(r for r in rows if r["tool"] == tool and r["branches"] == n_large)
            print(f"ratio {n_large}/{n_small} branches, {tool:<26}: time "
                  f"{statistics.median(large['times']) / statistics.median(small['times']):.2f}x, bytes "
                  f"{statistics.median(large['downs']) / max(1, statistics.median(small['downs'])):.2f}x")
        reqs = log.read_text().splitlines()
        print(f"\n({len(reqs)} HTTP requests served in total; log {log if args.keep else '(removed)'})")
        return 0
    finally:
        if proxy:
            proxy.close()
        if server and server.poll() is None:
            try:
                os.killpg(server.pid, signal.SIGTERM)
                server.wait(timeout=5)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                try:
                    os.killpg(server.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
