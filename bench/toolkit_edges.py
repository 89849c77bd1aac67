#!/usr/bin/env python3
"""Runs the QUT coordination-network-toolkit (pip install coordination-network-toolkit==1.5.2)
on a CSV in its own layout and writes its edges as `signal,user_1,user_2,weight`, the form of
facade's signal-edges.csv, for the parity test and the benchmark.

Two documented differences are applied on the toolkit's side, not hidden:
  * self-loops (user_1 == user_2), which the toolkit's tables hold, are dropped: facade never
    links an account to itself;
  * the toolkit's CSV reader turns an empty `urls` field into one URL "" (it splits "" on " "),
    which links every pair of link-less posts within the window; those rows are deleted
    before co_link is computed.

usage: toolkit_edges.py POSTS.csv OUT.csv [--window SECONDS] [--signals co_tweet,co_retweet,co_link]
                        [--db PATH] [--cpus N] [--no-dump]
"""
import argparse
import csv
import os
import sqlite3
import subprocess
import sys
import tempfile
import time

NAMES = {"co_tweet": "co-tweet", "co_retweet": "co-retweet", "co_link": "co-link",
         "co_reply": "co-reply", "co_similar_tweet": "co-similar-tweet"}


def toolkit(db, *args):
    subprocess.run([sys.executable, "-W", "ignore::RuntimeWarning", "-m", "coordination_network_toolkit", db, *args],
                   check=True, stdout=subprocess.DEVNULL)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("posts")
    parser.add_argument("out")
    parser.add_argument("--window", type=int, default=60)
    parser.add_argument("--signals", default="co_tweet,co_retweet,co_link")
    parser.add_argument("--db")
    parser.add_argument("--cpus", type=int, default=os.cpu_count())
    parser.add_argument("--no-dump", action="store_true", help="compute the tables only")
    args = parser.parse_args()
    db = args.db or os.path.join(tempfile.mkdtemp(), "toolkit.db")
    started = time.time()
    toolkit(db, "preprocess", "--format", "csv", args.posts)
    with sqlite3.connect(db) as con:
        con.execute("delete from message_url where url = ''")
    timings = {"preprocess": time.time() - started}
    signals = args.signals.split(",")
    for signal in signals:
        t = time.time()
        toolkit(db, "compute", signal, "--time_window", str(args.window),
                "--min_edge_weight", "1", "--n_cpus", str(args.cpus))
        timings[signal] = time.time() - t
    if args.no_dump:
        print(" ".join(f"{k}={v:.1f}s" for k, v in timings.items()), file=sys.stderr)
        return
    with open(args.out, "w", newline="") as f, sqlite3.connect(db) as con:
        out = csv.writer(f)
        out.writerow(["signal", "user_1", "user_2", "weight"])
        for signal in signals:
            rows = con.execute(f"select user_1, user_2, weight from {signal}_network "
                               "where user_1 != user_2 order by user_1, user_2")
            for u1, u2, w in rows:
                out.writerow([NAMES[signal], u1, u2, w])
    print(" ".join(f"{k}={v:.1f}s" for k, v in timings.items()), file=sys.stderr)


if __name__ == "__main__":
    main()
