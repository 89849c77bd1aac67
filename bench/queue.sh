#!/usr/bin/env bash
# Benchmark: the shared scan queue on PostgreSQL against one `facade scan`, same files, same
# machine, one run. Whole processes are timed (start-up and model loading included).
#   - facade scan -j THREADS                      (the baseline)
#   - facade queue add                            (hashing and queueing)
#   - 1 worker -j THREADS --until-empty --no-reuse
#   - 2 workers -j THREADS/2 each, at once        (how two machines' workers share a queue)
# plus the database's share: statements per image and their server time (pg_stat_statements)
# and the time the workers spent waiting on the database (their closing line).
# A private cluster is started in a temporary folder (as the postgres user when run as root)
# and removed afterwards. Usage: bench/queue.sh [N images, default 600] [THREADS, default nproc]
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:-600}"
THREADS="${2:-$(nproc)}"
HALF=$(( THREADS > 1 ? THREADS / 2 : 1 ))
SHARED="${FACADE_SHARED_DIR:-../shared}/faces"
PG_BIN="${FACADE_PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)}"
PORT="${FACADE_BENCH_PG_PORT:-55439}"
DIR="$(mktemp -d)"
AS=()
if [ "$(id -u)" -eq 0 ]; then chown postgres "$DIR"; AS=(runuser -u postgres --); fi
stop() { "${AS[@]}" "$PG_BIN/pg_ctl" -D "$DIR/data" -m fast -w stop >/dev/null 2>&1 || true; rm -rf "$DIR"; }
trap stop EXIT
python3 bench/prepare.py "$SHARED" "$DIR/img" "$N"
cargo build --release -q -p facade-cli
"${AS[@]}" "$PG_BIN/initdb" -D "$DIR/data" -U facade --auth=trust -E UTF8 >/dev/null
"${AS[@]}" "$PG_BIN/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w -o \
    "-c listen_addresses=127.0.0.1 -p $PORT -c unix_socket_directories=$DIR -c shared_preload_libraries=pg_stat_statements" \
    start >/dev/null
F=./target/release/facade
URL="postgres://facade@127.0.0.1:$PORT"
psql_q() { psql -X -q -t -A -h 127.0.0.1 -p "$PORT" -U facade -d "$1" -c "$2"; }
timed() { /usr/bin/time -f "%e s, peak RSS %M KiB" "$@"; }

echo "== $N images (400 px JPEG), $THREADS threads, $(nproc) cores, PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}')"
echo "-- facade scan -j $THREADS"
timed $F scan -j "$THREADS" --no-progress "$DIR/img" > "$DIR/scan.jsonl"

run_queue() {  # name, then the worker command lines to start together
    local db="$1"; shift
    psql_q postgres "CREATE DATABASE $db" >/dev/null
    psql_q "$db" "CREATE EXTENSION pg_stat_statements" >/dev/null
    echo "-- queue add ($db)"
    timed $F queue add --db "$URL/$db" "$DIR/img"
    psql_q "$db" "SELECT pg_stat_statements_reset()" >/dev/null
    local started pids=()
    started=$(date +%s.%N)
    for threads in "$@"; do
        $F worker --db "$URL/$db" -j "$threads" --until-empty --no-reuse 2>"$DIR/$db-$threads-${#pids[@]}.log" &
        pids+=($!)
    done
    for pid in "${pids[@]}"; do wait "$pid"; done
    local ended; ended=$(date +%s.%N)
    echo "-- workers with -j $* at once: $(python3 -c "print(f'{$N/($ended-$started):.1f} images/s, {($ended-$started):.2f} s wall')")"
    cat "$DIR/$db"-*.log | grep stopped | sed 's/^/   /'
    echo "   server side (pg_stat_statements, this database): statements per image, server ms per image:"
    psql_q "$db" "SELECT round(sum(calls)::numeric / $N, 2), round((sum(total_exec_time) / $N)::numeric, 3)
                  FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = '$db')" | sed 's/^/   /'
    psql_q "$db" "SELECT '   ' || calls || ' x ' || round(mean_exec_time::numeric, 3) || ' ms: ' || left(regexp_replace(query, '\s+', ' ', 'g'), 70)
                  FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = '$db')
                  ORDER BY total_exec_time DESC LIMIT 6"
    $F results --db "$URL/$db" > "$DIR/$db.jsonl"
    python3 - "$DIR/scan.jsonl" "$DIR/$db.jsonl" <<'EOF'
import json, sys
def load(p):
    return {json.loads(l)["path"]: json.loads(l) for l in open(p)}
a, b = load(sys.argv[1]), load(sys.argv[2])
same = sum(1 for k in a if k in b and a[k] == b[k])
print(f"   records identical to facade scan's: {same} of {len(a)} ({len(b)} results)")
EOF
    psql_q "$db" "SELECT '   table sizes: jobs ' || pg_size_pretty(pg_total_relation_size('jobs')) || ', scans ' || pg_size_pretty(pg_total_relation_size('scans'))"
}
run_queue one "$THREADS"
run_queue two "$HALF" "$HALF"
