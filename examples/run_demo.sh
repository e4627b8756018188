#!/usr/bin/env bash
# The demo: Agent A and Agent B, two HTTP services on 127.0.0.1, share one session and
# one W3C trace.  Installs tracectrl into .venv/demo first (skipped when up to date).
set -euo pipefail
cd "$(dirname "$0")/.."
PYENV_ROOT="${PYENV_ROOT:-$HOME/.pyenv}"
python=""
for minor in 3.13 3.12 3.11 3.10 3.9; do
    candidate=$(ls -d "$PYENV_ROOT/versions/$minor".[0-9]* 2>/dev/null | sort -V | tail -n 1) || true
    if [ -n "$candidate" ]; then python="$candidate/bin/python"; break; fi
done
[ -n "$python" ] || python=$(command -v python3)
venv=.venv/demo
want="$(sha256sum pyproject.toml | cut -c1-16)"
if [ ! -f "$venv/.tracectrl-installed" ] || [ "$(cat "$venv/.tracectrl-installed")" != "$want" ]; then
    rm -rf "$venv"
    "$python" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --upgrade pip
    "$venv/bin/python" -m pip install --quiet -e ".[requests]"
    echo "$want" >"$venv/.tracectrl-installed"
fi
exec "$venv/bin/python" examples/two_agents.py "$@"
