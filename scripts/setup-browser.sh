#!/usr/bin/env bash
# Installs what the review page's browser test needs: Debian's chromium (apt) and
# playwright-core (npm, pinned by e2e/package-lock.json; it drives the system chromium and
# downloads no browser of its own).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x /usr/bin/chromium ]; then
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get install -y -q chromium >/dev/null 2>&1 \
        || { $SUDO apt-get update -q >/dev/null && $SUDO apt-get install -y -q chromium >/dev/null; }
fi
(cd e2e && npm ci --no-audit --no-fund --silent)
echo "browser test ready: $(/usr/bin/chromium --version 2>/dev/null), playwright-core $(node -p "require('./e2e/node_modules/playwright-core/package.json').version")" >&2
