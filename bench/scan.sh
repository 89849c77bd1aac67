#!/usr/bin/env bash
# Benchmark: facade scan (full, and --faces-only) vs facenet-pytorch MTCNN vs JPEG decoding alone, same files, same
# thread count, one run, each timed as a whole process (start-up and model loading included).
# The files: profile pictures whose originals are at least 400 px on their longer side (StyleGAN2, Stable Diffusion,
# AI portraits; congress, FFHQ and web portraits), re-encoded to 400 px JPEG q90 by bench/prepare.py.
# Usage: bench/scan.sh [N images, default 300] [THREADS, default nproc] [ROUNDS, default 1]
# FACADE_BENCH_BASELINE=PATH also times an earlier facade binary on the same files in each round,
# so that a change is compared on the same machine in the same run.
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:-300}"
THREADS="${2:-$(nproc)}"
ROUNDS="${3:-1}"
SHARED="${FACADE_SHARED_DIR:-../shared}/faces"
VENV="${FACADE_PEER_VENV:-$HOME/.cache/facade-peer}"
[ -x "$VENV/bin/python" ] || { echo "peer missing: run bench/setup-peer.sh" >&2; exit 2; }
DIR="$(mktemp -d)"
trap 'rm -rf "$DIR"' EXIT
"$VENV/bin/python" bench/prepare.py "$SHARED" "$DIR/img" "$N" 400
COUNT=$(ls "$DIR/img" | wc -l)
cargo build --release -q -p facade-cli -p facade-image --example decode_only
BIN="${CARGO_TARGET_DIR:-target}/release"
# One line per process: name, wall seconds, images/s, peak RSS.
whole() {
    local name="$1"; shift
    /usr/bin/time -f "%e %M" -o "$DIR/time" "$@" > "$DIR/out" 2> "$DIR/err" || { cat "$DIR/err" >&2; exit 1; }
    read -r secs kib < "$DIR/time"
    python3 -c "print(f'{\"$name\":<22} {$secs:6.2f} s  {$COUNT/$secs:7.1f} images/s  peak RSS {$kib/1024:5.0f} MiB')"
}
echo "== $COUNT images, $THREADS threads, $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
for round in $(seq "$ROUNDS"); do
    echo "-- round $round"
    whole decode-only "$BIN/examples/decode_only" "$DIR/img" "$THREADS"
    whole facade-faces-only "$BIN/facade" scan -j "$THREADS" --no-progress --faces-only "$DIR/img"
    whole facade-full "$BIN/facade" scan -j "$THREADS" --no-progress "$DIR/img"
    if [ -n "${FACADE_BENCH_BASELINE:-}" ]; then
        whole baseline-faces-only "$FACADE_BENCH_BASELINE" scan -j "$THREADS" --no-progress --faces-only "$DIR/img"
        whole baseline-full "$FACADE_BENCH_BASELINE" scan -j "$THREADS" --no-progress "$DIR/img"
    fi
    whole peer-mtcnn "$VENV/bin/python" bench/peer_mtcnn.py "$DIR/img" "$THREADS"
    echo "   (peer's own loop, model loaded: $(cat "$DIR/out"))"
done
