#!/usr/bin/env bash
# No-change poll benchmark, 10 vs 20,000 branches, agent beside git fetch: tests/bench/poll_bench.sh [--runs 15] [--keep]
exec python3 "$(dirname "${BASH_SOURCE[0]}")/poll_bench.py" "$@"
