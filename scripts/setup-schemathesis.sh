#!/usr/bin/env bash
# The API contract checker: Schemathesis 4.32.5 from PyPI under target/ (see
# pip-under-target.sh); prints the path of target/schemathesis, which runs it. The test
# crates/facade-cli/tests/api_contract.rs uses it.
set -euo pipefail
exec bash "$(dirname "$0")/pip-under-target.sh" schemathesis schemathesis==4.32.5 schemathesis -m schemathesis.cli
