#!/usr/bin/env bash
# Network benchmark: facade vs the QUT coordination-network-toolkit 1.5.2 on the same
# simulated posts (QUT CSV layout), same signals (co-tweet, co-retweet, co-link), same 60 s
# window, in the same run. For each size it prints wall time and peak memory (whole process
# tree) of each tool and their ratios.
#
#   bench/networks.sh [SIZE[:MODE],...]      default: 40000:edges,400000:compute
#
# SIZE is the number of organic accounts, ~25 posts each: 40000 → ~1M posts, 400000 → ~10M.
# MODE `edges`: both write every directed edge to a CSV (facade --signal-edges, the toolkit's
# tables dumped) and the two edge sets are compared. `compute`: facade writes its usual
# outputs only and the toolkit only computes its tables (at 10M posts the edge CSVs hold
# ~20 million rows). The 10M toolkit run takes about 8 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
sizes=${1:-40000:edges,400000:compute}
cargo build --release --quiet
python=$(bash bench/setup-toolkit.sh)
facade=target/release/facade

run_size() {
    local organic=$1 mode=$2
    local out=bench-out/networks-$organic
    mkdir -p "$out"
    [ -f "$out/sim/posts-qut.csv" ] || $facade simulate --organic "$organic" --qut --out "$out/sim"
    echo "== posts: $(($(wc -l < "$out/sim/posts-qut.csv") - 1)), cores: $(nproc), mode: $mode"
    rm -rf "$out/facade" "$out/toolkit.db"* "$out/toolkit.csv"
    local facade_extra=() toolkit_extra=()
    if [ "$mode" = edges ]; then facade_extra=(--signal-edges); else toolkit_extra=(--no-dump); fi
    python3 bench/peak.py facade $facade networks --qut "$out/sim/posts-qut.csv" \
        --signals co-tweet,co-retweet,co-link --link-match exact --window 60s --out "$out/facade" \
        "${facade_extra[@]}" 2> "$out/facade.log" | tee "$out/facade.time"
    python3 bench/peak.py toolkit "$python" bench/toolkit_edges.py "$out/sim/posts-qut.csv" \
        "$out/toolkit.csv" --window 60 --db "$out/toolkit.db" --cpus "$(nproc)" "${toolkit_extra[@]}" \
        2> "$out/toolkit.log" | tee "$out/toolkit.time"
    tail -1 "$out/toolkit.log"
    python3 - "$out" "$mode" <<'PY'
import csv, re, sys
out, mode = sys.argv[1], sys.argv[2]
def stats(name):
    text = open(f"{out}/{name}.time").read()
    wall, peak = re.search(r"wall ([\d.]+) s, peak memory (\d+) MiB", text).groups()
    return float(wall), int(peak)
(fw, fm), (tw, tm) = stats("facade"), stats("toolkit")
print(f"facade is {tw / fw:.1f}x faster; peak memory facade {fm} MiB, toolkit {tm} MiB "
      f"(facade/toolkit = {fm / max(tm, 1):.2f})")
if mode == "edges":
    def edges(path):
        with open(path) as f:
            rows = csv.reader(f)
            next(rows)
            return {tuple(r) for r in rows}
    ours, theirs = edges(f"{out}/facade/signal-edges.csv"), edges(f"{out}/toolkit.csv")
    print(f"directed edges: facade {len(ours)}, toolkit {len(theirs)}, identical: {ours == theirs}")
PY
    rm -f "$out/toolkit.db"* "$out/toolkit.csv"
}

IFS=, read -ra specs <<< "$sizes"
for spec in "${specs[@]}"; do
    run_size "${spec%%:*}" "$( [[ $spec == *:* ]] && echo "${spec#*:}" || echo edges )"
done
