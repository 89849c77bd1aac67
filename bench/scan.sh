#!/usr/bin/env bash
# Benchmark: facade scan (full, and --faces-only) vs facenet-pytorch MTCNN vs JPEG decoding alone, same files, same
# thread count, one run. Usage: bench/scan.sh [N images, default 300] [THREADS, default nproc]
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:-300}"
THREADS="${2:-$(nproc)}"
SHARED="${FACADE_SHARED_DIR:-../shared}/faces"
VENV="${FACADE_PEER_VENV:-$HOME/.cache/facade-peer}"
[ -x "$VENV/bin/python" ] || { echo "peer missing: run bench/setup-peer.sh" >&2; exit 2; }
DIR="$(mktemp -d)"
trap 'rm -rf "$DIR"' EXIT
"$VENV/bin/python" bench/prepare.py "$SHARED" "$DIR/img" "$N"
cargo build --release -q -p facade-cli -p facade-image --example decode_only
peak() { /usr/bin/time -f "%M" -o "$DIR/rss" "$@"; echo "  peak RSS $(( $(cat "$DIR/rss") / 1024 )) MiB" >&2; }
echo "== $N images, $THREADS threads, $(nproc) cores"
peak ./target/release/examples/decode_only "$DIR/img" "$THREADS"
peak ./target/release/facade scan -j "$THREADS" --no-progress --faces-only "$DIR/img" > "$DIR/faces.jsonl"
peak ./target/release/facade scan -j "$THREADS" --no-progress "$DIR/img" > "$DIR/facade.jsonl"
peak "$VENV/bin/python" bench/peer_mtcnn.py "$DIR/img" "$THREADS"
