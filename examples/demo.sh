#!/usr/bin/env bash
# The main job, on any machine: converge the bundled example fleet (examples/fleet) into a
# scratch directory, then converge again and show that the second run changes nothing.
# Nothing outside the scratch directory is touched: every path of the example lives under `root`.
#
#   examples/demo.sh [SCRATCH_DIR]
#
# It builds the agent first (cargo build --release): the first run compiles for several minutes
# (about 5 on 2 cores); later runs take seconds.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
root=${1:-$(mktemp -d "${TMPDIR:-/tmp}/gitops-demo.XXXXXX")}
mkdir -p "$root"
root=$(cd "$root" && pwd)

bin=$repo/target/release/gitops-agent
if ! command -v cargo >/dev/null && [ -x "$HOME/.cargo/bin/cargo" ]; then
  export PATH="$HOME/.cargo/bin:$PATH"
fi
if [ -x "$bin" ]; then
  echo "== building the agent (cargo build --release: seconds when nothing changed)"
else
  echo "== building the agent (cargo build --release): the first build takes several minutes" \
       "(about 5 on 2 cores); later runs take seconds"
fi
(cd "$repo" && cargo build --release --locked --quiet -p gitops-agent)

echo "== first converge of examples/fleet into $root"
rc=0
"$bin" converge --playbook-dir "$repo/examples/fleet" -e root="$root" || rc=$?
if [ "$rc" -ne 2 ] && [ "$rc" -ne 0 ]; then
  echo "first converge failed (exit $rc)" >&2
  exit 1
fi

echo
echo "== second converge: nothing should change"
rc=0
"$bin" converge --playbook-dir "$repo/examples/fleet" -e root="$root" || rc=$?
if [ "$rc" -ne 0 ]; then
  echo "second converge exited $rc: it should have changed nothing (exit 0)" >&2
  exit 1
fi
echo
echo "== idempotent: the second converge changed nothing. The converged tree:"
find "$root" -printf '%M %u:%g %p\n' | sed "s#$root#<root>#" | sort -k3
