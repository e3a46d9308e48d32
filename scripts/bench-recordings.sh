#!/usr/bin/env bash
# Recordings benchmark (release build): getRecordings p50/p99 over 100,000 recordings and the
# import rate of 5 MB presentation tarballs. Usage: scripts/bench-recordings.sh
# Tunables: BENCH_RECORDINGS (100000), BENCH_REQUESTS (500), BENCH_IMPORTS (40).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --bin ferrolite
exec python3 scripts/bench-recordings.py "$PWD/target/release/ferrolite"
