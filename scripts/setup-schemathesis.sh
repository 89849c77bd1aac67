#!/usr/bin/env bash
# The API contract checker: Schemathesis 4.32.5 from PyPI, installed under
# target/schemathesis-site (no virtualenv module needed), with a wrapper script that runs it.
# Prints the wrapper's path. The test crates/facade-cli/tests/api_contract.rs uses it.
set -euo pipefail
cd "$(dirname "$0")/.."
site="$PWD/target/schemathesis-site"
wrapper="$PWD/target/schemathesis"
if ! PYTHONPATH="$site" python3 -c "import schemathesis" 2>/dev/null; then
    python3 -m pip install --quiet --disable-pip-version-check --target "$site" \
        schemathesis==4.32.5 >&2
fi
printf '#!/bin/sh\nPYTHONPATH="%s${PYTHONPATH:+:$PYTHONPATH}" exec python3 -m schemathesis.cli "$@"\n' "$site" > "$wrapper"
chmod +x "$wrapper"
echo "$wrapper"
