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
# Peers we did not write (tests/peers), the browser for the page, the notification path.
command -v nats-server >/dev/null 2>&1 || [ -x /usr/sbin/nats-server ] || need_apt+=(nats-server)
[ -x /usr/sbin/rabbitmq-server ] || [ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] || need_apt+=(rabbitmq-server)
command -v node >/dev/null 2>&1 || need_apt+=(nodejs npm)
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
[ -x /usr/bin/chromedriver ] || need_apt+=(chromium-driver)
command -v prometheus-alertmanager >/dev/null 2>&1 || [ -x /usr/bin/prometheus-alertmanager ] || need_apt+=(prometheus-alertmanager)
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
if command -v systemctl >/dev/null 2>&1; then
    systemctl stop prometheus prometheus-alertmanager >/dev/null 2>&1 || true
fi

# npm packages (node-opcua and aedes servers, axe-core for the page's accessibility check)
# go into an ignored folder, never globally.
NODE_DIR=.node
if command -v npm >/dev/null 2>&1; then
    need_npm=()
    for pkg in node-opcua@2 aedes@1 axe-core@4; do
        [ -d "$NODE_DIR/node_modules/${pkg%@*}" ] || need_npm+=("$pkg")
    done
    if [ ${#need_npm[@]} -gt 0 ]; then
        mkdir -p "$NODE_DIR"
        [ -f "$NODE_DIR/package.json" ] || echo '{"name": "fieldwatch-test-peers", "private": true}' > "$NODE_DIR/package.json"
        npm install --prefix "$NODE_DIR" --no-audit --no-fund --loglevel=error "${need_npm[@]}" >/dev/null \
            || echo "note: npm install failed; tests needing ${need_npm[*]} will be skipped" >&2
    fi
fi
export FIELDWATCH_NODE_MODULES="$PWD/$NODE_DIR/node_modules"

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
