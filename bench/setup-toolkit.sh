#!/usr/bin/env bash
# The peer for network parity and benchmarks: the QUT coordination-network-toolkit 1.5.2 from
# PyPI under target/ (about 60 MB; see scripts/pip-under-target.sh), with target/toolkit-python,
# a wrapper that runs python3 on it. Prints the wrapper's path.
set -euo pipefail
exec bash "$(dirname "$0")/../scripts/pip-under-target.sh" toolkit-python coordination-network-toolkit==1.5.2 coordination_network_toolkit
