#!/usr/bin/env python3
"""Artifacts no-op benchmark (issue 12's acceptance): 100 artifacts checked with stat, fetched with
get_url (checksum given) and extracted with unarchive (remote_src), served by
tests/lib/httpserver.py on 127.0.0.1.

Converges once, then times the no-op runs (--runs, default 5) and counts the HTTP requests the
server got during them: with checksums given the count must be 0 (like Ansible, which makes no
request when dest matches its checksum). Exits 1 when a no-op run changed something or made a
request. Plus one `file: state=directory` per artifact for unarchive's dest.

  python3 tests/bench/artifacts_bench.py [--agent target/release/gitops-agent] [--runs 5] [--keep]
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "lib"))
import harness  # noqa: E402

N = 100


def make_artifacts(www: Path) -> list[dict]:
    www.mkdir(parents=True)
    items = []
    for i in range(N):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz") as tf:
            for name, body in ((f"artifact-{i}/VERSION", f"1.{i}\n"), (f"artifact-{i}/bin/tool", "#!/bin/sh\n" * 50)):
                t = tarfile.TarInfo(name)
                t.size, t.mtime, t.mode = len(body), 1600000000, 0o755
                tf.addfile(t, io.BytesIO(body.encode()))
        data = buf.getvalue()
        (www / f"artifact-{i}.tar.gz").write_bytes(data)
        items.append({"n": i, "sha256": hashlib.sha256(data).hexdigest()})
    return items


def make_playbook(pbdir: Path, items: list[dict]) -> None:
    pbdir.mkdir(parents=True)
    (pbdir / "vars.json").write_text(json.dumps({"artifacts": items}))
    (pbdir / "site.yml").write_text("""\
- hosts: all
  gather_facts: false
  vars_files: [vars.json]
  tasks:
    - name: download directory
      file: {path: "{{ root }}/dl", state: directory}
    - name: what is there already
      stat:
        path: "{{ root }}/dl/artifact-{{ item.n }}.tar.gz"
        checksum_algorithm: sha256
      loop: "{{ artifacts }}"
      register: present
    - name: fetch artifacts
      get_url:
        url: "{{ http_url }}/artifact-{{ item.n }}.tar.gz"
        dest: "{{ root }}/dl/artifact-{{ item.n }}.tar.gz"
        checksum: "sha256:{{ item.sha256 }}"
      loop: "{{ artifacts }}"
    - name: install directories
      file: {path: "{{ root }}/opt/{{ item.n }}", state: directory}
      loop: "{{ artifacts }}"
    - name: extract artifacts
      unarchive:
        src: "{{ root }}/dl/artifact-{{ item.n }}.tar.gz"
        dest: "{{ root }}/opt/{{ item.n }}"
        remote_src: true
      loop: "{{ artifacts }}"
""")


def converge(agent: Path, pbdir: Path, root: Path, url: str) -> tuple[int, float, dict]:
    argv = [str(agent), "converge", "--playbook-dir", str(pbdir), "--playbook", "site.yml",
            "--host-name", "localhost", "-e", f"root={root}", "-e", f"http_url={url}", "--format", "json"]
    t0 = time.monotonic()
    p = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    dt = time.monotonic() - t0
    try:
        doc = json.loads(p.stdout)
    except json.JSONDecodeError:
        doc = {}
    if p.returncode not in (0, 2):
        sys.exit(f"converge failed (rc {p.returncode}):\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}")
    return p.returncode, dt, doc


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--agent", type=Path, default=harness.agent_bin())
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="artifacts-bench-"))
    try:
        items = make_artifacts(tmp / "www")
        make_playbook(tmp / "pb", items)
        root = tmp / "root"
        root.mkdir()
        log = tmp / "requests.log"
        with harness.http_server(tmp / "www", log) as url:
            rc, first, _ = converge(args.agent, tmp / "pb", root, url)
            first_requests = len(log.read_text().splitlines()) if log.exists() else 0
            times, changed_runs = [], 0
            for _ in range(args.runs):
                rc, dt, doc = converge(args.agent, tmp / "pb", root, url)
                times.append(dt)
                changed_runs += rc == 2
            total = len(log.read_text().splitlines()) if log.exists() else 0
        noop_requests = total - first_requests
        print(f"artifacts: {N} (stat + get_url with checksum + unarchive remote_src)")
        print(f"first converge: {first * 1000:.0f} ms, {first_requests} requests")
        print(f"no-op converge: median {statistics.median(times) * 1000:.1f} ms over {len(times)} runs "
              f"(min {min(times) * 1000:.1f} ms)")
        print(f"requests during the no-op runs: {noop_requests}")
        ok = noop_requests == 0 and changed_runs == 0
        if changed_runs:
            print(f"FAIL: {changed_runs} no-op run(s) changed something")
        if noop_requests:
            print("FAIL: the no-op runs made HTTP requests")
        return 0 if ok else 1
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
