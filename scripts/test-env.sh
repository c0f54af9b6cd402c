#!/usr/bin/env bash
# Installs what the integration tests need — the `fakesnow` Snowflake emulator — into a Python
# virtualenv under the project's cache directory. Idempotent: a second run with the same pinned
# versions does nothing. Prints the path of the `fakesnow` executable on its last line.
#
# Cache directory: $SNOWFLAKE_MCP_CACHE, else ${XDG_CACHE_HOME:-$HOME/.cache}/snowflake-mcp.
set -euo pipefail

cache="${SNOWFLAKE_MCP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/snowflake-mcp}"
venv="$cache/venv"
# Pinned so every machine tests against the same emulator; bump deliberately.
requirements=("fakesnow[server]==0.12.1" "snowflake-connector-python<5")
stamp="$venv/.installed"
want="${requirements[*]}"

python=${PYTHON:-python3}
if ! command -v "$python" >/dev/null 2>&1; then
  echo "error: python3 is required to install the fakesnow emulator (set PYTHON=/path/to/python3)" >&2
  exit 1
fi

if [ -x "$venv/bin/fakesnow" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  echo "$venv/bin/fakesnow"
  exit 0
fi

mkdir -p "$cache"
echo "installing the fakesnow emulator into $venv ..." >&2
"$python" -m venv "$venv" >&2
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip >&2
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${requirements[@]}" >&2
printf '%s' "$want" >"$stamp"
echo "$venv/bin/fakesnow"
