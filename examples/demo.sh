#!/usr/bin/env bash
# The main job, on any machine: converge the bundled example fleet (examples/fleet) into a
# scratch directory, then converge again and show that the second run changes nothing.
# Nothing outside the scratch directory is touched: every path of the example lives under `root`.
#
#   examples/demo.sh [SCRATCH_DIR]
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
root=${1:-$(mktemp -d "${TMPDIR:-/tmp}/gitops-demo.XXXXXX")}
mkdir -p "$root"
root=$(cd "$root" && pwd)

(cd "$repo" && cargo build --release --locked --quiet -p gitops-agent)
bin=$repo/target/release/gitops-agent

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
