#!/usr/bin/env python3
"""Runs a command and prints its wall time and the peak resident memory of its whole process
tree (sampled every 50 ms from /proc, so worker processes count together).

usage: peak.py LABEL COMMAND [ARG...]
"""
import os
import subprocess
import sys
import time


def tree_rss_kib(root):
    children = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(pid))
        except (OSError, ValueError, IndexError):
            pass
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
        stack.extend(children.get(pid, []))
    return total


def main():
    label, command = sys.argv[1], sys.argv[2:]
    started = time.time()
    process = subprocess.Popen(command)
    peak = 0
    while process.poll() is None:
        peak = max(peak, tree_rss_kib(process.pid))
        time.sleep(0.05)
    wall = time.time() - started
    print(f"{label}: wall {wall:.1f} s, peak memory {peak / 1024:.0f} MiB, exit {process.returncode}", flush=True)
    sys.exit(process.returncode)


if __name__ == "__main__":
    main()
