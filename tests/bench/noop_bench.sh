#!/usr/bin/env bash
# No-op benchmark (run by hand; not part of tests/run-all.sh):
#   tests/bench/noop_bench.sh [--agent-runs 20] [--ansible-runs 3] [--keep]
# Builds target/release/gitops-agent if missing and creates the test venv if missing.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$repo"
venv="${GITOPS_TEST_VENV:-$repo/target/test-venv}"
if [ ! -x "$venv/bin/ansible-playbook" ]; then
  python3 -m venv "$venv"
  "$venv/bin/python3" -m pip install --disable-pip-version-check -q 'ansible-core>=2.19,<2.20' pytest pytest-xdist
fi
if [ ! -x target/release/gitops-agent ] || [ "${GITOPS_BENCH_REBUILD:-1}" = 1 ]; then
  cargo build --release --locked -p gitops-agent
fi
export ANSIBLE_BIN_DIR="$venv/bin"
exec "$venv/bin/python3" tests/bench/noop_bench.py "$@"
