#!/usr/bin/env bash
# The project's test command: the host's test tools (apt, as root), build, the Rust tests, then the
# pytest tiers (differential, bad input, package repositories and systemd containers), then the VM
# tier on its own. On a fresh Debian 12 machine (root, a Rust toolchain) it needs nothing else.
#
#   tests/run-all.sh                 # everything
#   tests/run-all.sh -k copy_basic   # extra arguments go to pytest
#
# How long each stage takes on 2 cores (the last CI run), printed at the start and measured at the
# end of each stage ("=== timing: <stage> <s>s"):
#   setup (tests/setup-host.sh)  apt-get install on a fresh machine ~2-3 min; nothing to do after
#   venv                         pip install of ansible-core + pytest the first time ~30 s
#   cargo build                  ~6 min cold, seconds when nothing changed
#   cargo test                   ~1.5 min (the lib tests alone: seconds)
#   pytest                       ~13-14 min (the first run also debootstraps the container root: +1-4 min)
#   vm                           ~1 min
#
# Environment:
#   GITOPS_TEST_VENV   venv with ansible-core + pytest (default: <repo>/target/test-venv; created if missing)
#   GITOPS_AGENT_BIN   agent binary under test (default: <repo>/target/debug/gitops-agent)
#   GITOPS_TEST_JOBS   parallel pytest workers (default 2; 1 disables pytest-xdist)
#   GITOPS_SKIP_CARGO  =1 skips cargo build/test (pytest tiers only)
#   GITOPS_SKIP_SETUP  =1 skips tests/setup-host.sh (no apt)
#   GITOPS_REALWORLD_CONVERGE  =1 adds the real-world corpus' converge comparison to the pytest stage
#                      (tests/realworld/README.md; off by default: ~1 min per allowlisted role). Its
#                      validate table over the PyPI entries always runs there (wheels from PyPI, cached)
#   GITOPS_REALWORLD_SOURCES   directory of the corpus' GitHub checkouts (absent: those entries skipped)
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
venv="${GITOPS_TEST_VENV:-$repo/target/test-venv}"
jobs="${GITOPS_TEST_JOBS:-2}"
export GITOPS_AGENT_BIN="${GITOPS_AGENT_BIN:-$repo/target/debug/gitops-agent}"
export ANSIBLE_BIN_DIR="$venv/bin"
# rustup's cargo when it is not on PATH (a login shell adds it; CI's environment may not).
if ! command -v cargo >/dev/null && [ -x "$HOME/.cargo/bin/cargo" ]; then
  export PATH="$HOME/.cargo/bin:$PATH"
fi
if [ "${GITOPS_SKIP_CARGO:-0}" != 1 ] && ! command -v cargo >/dev/null; then
  echo "cargo not found on PATH: install a Rust toolchain (1.88 or newer), e.g. with rustup" >&2
  exit 1
fi

t_start=$(date +%s)
stage_t0=$t_start
failed=()
stage() { stage_name="$1"; stage_t0=$(date +%s); echo "=== [$(date +%H:%M:%S)] stage: $stage_name"; }
stage_done() {
  local rc=$1 now; now=$(date +%s)
  local status=ok; [ "$rc" -eq 0 ] || { status="FAILED (rc=$rc)"; failed+=("$stage_name"); }
  echo "=== timing: $stage_name $((now - stage_t0))s $status"
}

echo "=== stages and their usual times on 2 cores: setup (apt on a fresh machine ~2-3 min)," \
     "venv (~30 s the first time), cargo build (~6 min cold), cargo test (~1.5 min)," \
     "pytest (~13-14 min; +1-4 min the first time for the container root), vm (~1 min)"

# --- 0. the host's tools (apt, as root; see tests/setup-host.sh) -------------------------------
if [ "${GITOPS_SKIP_SETUP:-0}" != 1 ]; then
  stage setup
  rc=0; tests/setup-host.sh </dev/null || rc=$?
  stage_done $rc
  [ $rc -eq 0 ] || { echo "cannot continue without the test tools" >&2; exit 1; }
fi

# --- 1. python venv with ansible-core and pytest ----------------------------------------------
stage venv
rc=0
(
  set -e
  py="${PYTHON:-python3}"
  if [ ! -x "$venv/bin/python3" ]; then
    "$py" -m venv "$venv" || {
      echo "python3 -m venv failed; on Debian: apt-get install python3-venv" >&2; exit 1; }
  fi
  if ! "$venv/bin/python3" - <<'PY' 2>/dev/null
import importlib.metadata as md, sys
v = md.version("ansible-core").split(".")
assert (int(v[0]), int(v[1])) == (2, 19), v
md.version("pytest"); md.version("pytest-xdist")
PY
  then
    "$venv/bin/python3" -m pip install --disable-pip-version-check -q 'ansible-core>=2.19,<2.20' pytest pytest-xdist
  fi
  # sed reads everything: `head -1` may close the pipe early and fail the stage (pipefail).
  "$venv/bin/ansible-playbook" --version | sed -n 1p
) || rc=$?
stage_done $rc
[ $rc -eq 0 ] || { echo "cannot continue without the test venv" >&2; exit 1; }

# --- 2. cargo build + unit tests ----------------------------------------------------------------
# The container tier's root filesystem (debootstrap, about a minute cold, cached after) is built
# in the background meanwhile: it waits on the network and the disk while cargo uses the CPUs.
rootfs_pid=""
if [ "$(id -u)" = 0 ] && command -v debootstrap >/dev/null && command -v systemd-nspawn >/dev/null; then
  mkdir -p target
  "$venv/bin/python3" tests/lib/container.py build >target/rootfs-build.log 2>&1 &
  rootfs_pid=$!
fi
if [ "${GITOPS_SKIP_CARGO:-0}" != 1 ]; then
  stage "cargo build"
  rc=0; cargo build --workspace --locked || rc=$?
  stage_done $rc
  [ $rc -eq 0 ] || { echo "=== build failed; not running further tiers"; exit 1; }

  stage "cargo test"
  rc=0; cargo test --workspace --locked || rc=$?
  stage_done $rc
fi

if [ -n "$rootfs_pid" ]; then
  stage "rootfs (background)"
  rc=0; wait "$rootfs_pid" || rc=$?
  grep '=== timing' target/rootfs-build.log || true
  # A failure here shows again, with its cause, in the container tests.
  [ $rc -eq 0 ] || tail -20 target/rootfs-build.log
  stage_done $rc
fi

# --- 3. pytest tiers (differential, bad input, systemd containers) -------------------------------
stage pytest
xdist=()
if [ "$jobs" != 1 ]; then xdist=(-n "$jobs"); fi
rc=0
"$venv/bin/python3" -m pytest -q -p no:cacheprovider "${xdist[@]}" --ignore=tests/system/test_vm.py tests/ "$@" || rc=$?
stage_done $rc

# --- 4. the VM tier (tests/system/test_vm.py): alone, since a TCG VM needs both cores -------------
# Extra pytest arguments (-k ...) go here too; with -k that matches nothing here, pytest exits 5
# ("no tests collected"), which is not a failure.
stage vm
rc=0
"$venv/bin/python3" -m pytest -q -p no:cacheprovider tests/system/test_vm.py "$@" || rc=$?
[ $rc -eq 5 ] && rc=0
stage_done $rc

echo "=== timing: total $(( $(date +%s) - t_start ))s"
if [ ${#failed[@]} -gt 0 ]; then
  echo "=== FAILED stages: ${failed[*]}"
  exit 1
fi
echo "=== all stages passed"
