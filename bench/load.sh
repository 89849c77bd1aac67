#!/usr/bin/env bash
# Load test of `facade serve`: wrk posts one image to /v1/scan from CLIENTS connections for
# SECONDS, on loopback; the server's resident memory is sampled every 5 s.
#   bench/load.sh [SECONDS=60] [CLIENTS=32] [reuse|no-reuse]
# reuse: every request after the first is answered from the store (same bytes);
# no-reuse: every request is judged (serve --no-reuse). Needs wrk (apt-get install wrk).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
clients=${2:-32}
mode=${3:-no-reuse}
cargo build --release -q
work=$(mktemp -d)
flags=()
[ "$mode" = "no-reuse" ] && flags+=(--no-reuse)
target/release/facade serve --addr 127.0.0.1:18099 --db "$work/load.db" --queue 64 "${flags[@]}" 2>"$work/serve.log" &
server=$!
trap 'kill $server 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 50); do curl -sf http://127.0.0.1:18099/healthz >/dev/null && break; sleep 0.2; done
rss() { awk '/VmRSS/ {printf "%.0f", $2/1024}' /proc/$server/status; }
echo "mode $mode, $clients clients, ${seconds} s, image ${FACADE_LOAD_IMAGE:-examples/astronaut-400.jpg}, $(nproc) cores"
echo "server RSS before: $(rss) MiB"
( while sleep 5; do printf "%s " "$(rss)"; done ) > "$work/rss.txt" &
sampler=$!
wrk -t2 -c"$clients" -d"${seconds}s" --timeout 30s --latency -s bench/load-scan.lua http://127.0.0.1:18099/v1/scan \
    | grep -E "answers|requests/s|Latency|Non-2xx"
kill $sampler
echo "server RSS every 5 s (MiB): $(cat "$work/rss.txt")"
echo "server RSS after: $(rss) MiB"
curl -sf http://127.0.0.1:18099/healthz >/dev/null && echo "server still healthy"
