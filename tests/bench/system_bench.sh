#!/usr/bin/env bash
# No-op check of 9 packages + 5 services + 10 users, agent vs ansible-playbook, in a systemd
# container (run by hand, as root; not part of tests/run-all.sh):
#   tests/bench/system_bench.sh [--agent-runs 20] [--ansible-runs 3]
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$repo"
venv="${GITOPS_TEST_VENV:-$repo/target/test-venv}"
if [ ! -x "$venv/bin/ansible-playbook" ]; then
  python3 -m venv "$venv"
  "$venv/bin/python3" -m pip install --disable-pip-version-check -q 'ansible-core>=2.19,<2.20' pytest pytest-xdist
fi
cargo build --release --locked -p gitops-agent
export ANSIBLE_BIN_DIR="$venv/bin"
exec "$venv/bin/python3" tests/bench/system_bench.py "$@"
