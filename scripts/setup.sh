#!/usr/bin/env bash
# Install what the toolkit, its tests and its walkthrough need on a fresh Debian machine
# (idempotent, quiet when everything is already there). Sourced by scripts/test and scripts/main.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

need_apt=()
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
command -v redis-cli >/dev/null 2>&1 || need_apt+=(redis-tools)
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
if ! command -v python3 >/dev/null 2>&1; then need_apt+=(python3 python3-venv python3-pip); fi
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: installing ${need_apt[*]} with apt-get" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
if ! python3 -c "import venv, ensurepip" >/dev/null 2>&1; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
stamp=.venv/.installed-$(cat pyproject.toml | sha256sum | cut -c1-16)
if [ ! -f "$stamp" ]; then
  echo "setup: installing the toolkit and its dependencies into .venv" >&2
  log=$(mktemp)
  if ! { .venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip &&
         .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'; } >"$log" 2>&1; then
    cat "$log" >&2
    echo "setup: pip install failed (output above)" >&2
    exit 1
  fi
  rm -f "$log"
  touch "$stamp"
fi
