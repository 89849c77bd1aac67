#!/usr/bin/env bash
# The peer for network parity and benchmarks: the QUT coordination-network-toolkit 1.5.2 from
# PyPI, installed under target/toolkit-site (about 60 MB, no virtualenv module needed), with a
# wrapper script that runs python3 on it. Prints the wrapper's path.
set -euo pipefail
cd "$(dirname "$0")/.."
site="$PWD/target/toolkit-site"
wrapper="$PWD/target/toolkit-python"
if ! PYTHONPATH="$site" python3 -c "import coordination_network_toolkit" 2>/dev/null; then
    python3 -m pip install --quiet --disable-pip-version-check --target "$site" \
        coordination-network-toolkit==1.5.2 >&2
fi
printf '#!/bin/sh\nPYTHONPATH="%s${PYTHONPATH:+:$PYTHONPATH}" exec python3 "$@"\n' "$site" > "$wrapper"
chmod +x "$wrapper"
echo "$wrapper"
