#!/usr/bin/env bash
# Installs what the PostgreSQL tests need: Debian's postgresql (its initdb, pg_ctl and server,
# and the `postgres` user the server runs as when the tests run as root). The tests start and
# stop their own private clusters (facade_store::testing); nothing is started here.
set -euo pipefail
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get install -y -q postgresql >/dev/null 2>&1 \
        || { $SUDO apt-get update -q >/dev/null && $SUDO apt-get install -y -q postgresql >/dev/null; }
fi
echo "PostgreSQL tests ready: $(ls -d /usr/lib/postgresql/*/bin | tail -1)" >&2
