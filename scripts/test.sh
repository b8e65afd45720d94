#!/usr/bin/env bash
# Set up everything the test suite needs on a fresh Debian machine (Python 3.11)
# and run it. Idempotent: a second run reuses the venv and the packages.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need_apt+=(mosquitto)
command -v promtool >/dev/null 2>&1 || need_apt+=(prometheus)
command -v fping >/dev/null 2>&1 || [ -x /usr/bin/fping ] || need_apt+=(fping)
command -v ip >/dev/null 2>&1 || need_apt+=(iproute2)
if [ ${#need_apt[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ]; then
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq || true
        apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
    else
        echo "note: missing Debian packages (${need_apt[*]}); tests needing them will be skipped" >&2
    fi
fi
# Debian's prometheus package may start its service; the tests start their own on free ports.
if command -v systemctl >/dev/null 2>&1; then systemctl stop prometheus >/dev/null 2>&1 || true; fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -e ".[test]"

# PostgreSQL: the same storage suite runs on it when this names a database.
if [ -z "${FIELDWATCH_TEST_PG:-}" ] && command -v pg_isready >/dev/null 2>&1 \
        && pg_isready -h 127.0.0.1 -p 5432 -q; then
    export FIELDWATCH_TEST_PG="postgresql://postgres@127.0.0.1:5432/test"
fi

set +e
.venv/bin/python -m pytest -q -rs -p no:cacheprovider "$@"
rc=$?
set -e
if [ "$rc" = 5 ]; then echo "no tests collected" >&2; exit 1; fi
exit "$rc"
