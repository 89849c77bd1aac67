#!/usr/bin/env bash
# Planted-network recovery, facade vs the QUT coordination-network-toolkit 1.5.2 + Louvain, on
# simulated archive exports no test tunes on (bench/recovery.py says how the peer's networks are
# made). Prints one JSON line per export and a per-style table of best-match F1.
#
#   bench/networks_recovery.sh [SEED:ORGANIC:SCALE:DAYS ...]
#   default: 201:10000:0.8:45 202:4000:0.5:90 203:8000:1.2:30
set -euo pipefail
cd "$(dirname "$0")/.."
specs=("$@")
[ ${#specs[@]} -gt 0 ] || specs=(201:10000:0.8:45 202:4000:0.5:90 203:8000:1.2:30)
cargo build --release --quiet
python=$(bash bench/setup-toolkit.sh)
facade=target/release/facade
results=bench-out/recovery.jsonl
mkdir -p bench-out && : > "$results"
for spec in "${specs[@]}"; do
    IFS=: read -r seed organic scale days <<< "$spec"
    out=bench-out/recovery-$seed
    rm -rf "$out"
    $facade simulate --seed "$seed" --organic "$organic" --network-scale "$scale" --days "$days" \
        --qut --out "$out/sim" 2> /dev/null
    $facade networks --users "$out/sim/users.csv" --tweets "$out/sim/tweets.csv" \
        --out "$out/facade" 2> "$out/facade.log"
    "$python" bench/toolkit_edges.py "$out/sim/posts-qut.csv" "$out/toolkit.csv" --window 60 \
        --signals co_tweet,co_retweet,co_link,co_reply,co_similar_tweet 2> "$out/toolkit.log"
    "$python" bench/recovery.py "$out/sim" "$out/facade/networks.json" "$out/toolkit.csv" \
        | tee -a "$results"
done
python3 - "$results" <<'PY'
import json, sys
from collections import defaultdict
rows = [json.loads(line) for line in open(sys.argv[1])]
by_style = defaultdict(lambda: {"facade": [], "peer": []})
for r in rows:
    for tool in ("facade", "peer"):
        for net in r[tool]["per_network"].values():
            by_style[net["style"]][tool].append(net["f1"])
mean = lambda xs: sum(xs) / len(xs)
print(f"{'style':<18} {'facade F1':>10} {'peer F1':>8}")
for style, f in by_style.items():
    print(f"{style:<18} {mean(f['facade']):>10.3f} {mean(f['peer']):>8.3f}")
for tool in ("facade", "peer"):
    f1s = [n["f1"] for r in rows for n in r[tool]["per_network"].values()]
    false = sum(len(r[tool]["false_networks"]) for r in rows)
    print(f"{tool}: mean best-match F1 {mean(f1s):.3f} over {len(f1s)} planted networks, "
          f"{false} flagged communities matching none")
PY
