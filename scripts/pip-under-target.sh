#!/usr/bin/env bash
# Installs a Python tool from PyPI under target/NAME-site (pip --target: no virtualenv module
# needed) unless it imports already, and writes target/NAME, a wrapper that runs python3 with
# that site on its path and the given arguments first. Prints the wrapper's path.
#   pip-under-target.sh NAME REQUIREMENT IMPORT [ARG...]
set -euo pipefail
name="$1" requirement="$2" import="$3"
shift 3
cd "$(dirname "$0")/.."
site="$PWD/target/$name-site"
wrapper="$PWD/target/$name"
if ! PYTHONPATH="$site" python3 -c "import $import" 2>/dev/null; then
    python3 -m pip install --quiet --disable-pip-version-check --target "$site" "$requirement" >&2
fi
printf '#!/bin/sh\nPYTHONPATH="%s${PYTHONPATH:+:$PYTHONPATH}" exec python3 %s "$@"\n' "$site" "$*" > "$wrapper"
chmod +x "$wrapper"
echo "$wrapper"
