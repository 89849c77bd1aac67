#!/usr/bin/env bash
# Installs the Python peer (facenet-pytorch 2.6.0, pulls ~5 GB of torch) into a virtual
# environment outside the repository. For benchmarks and parity tools only; never in CI.
set -euo pipefail
VENV="${FACADE_PEER_VENV:-$HOME/.cache/facade-peer}"
python3 -m venv "$VENV"
"$VENV/bin/pip" install -q facenet-pytorch==2.6.0
echo "peer installed in $VENV"
