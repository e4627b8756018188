#!/usr/bin/env bash
# The demo: Agent A and Agent B, two HTTP services on 127.0.0.1; each conversation keeps one
# session, each turn one W3C trace.  Installs tracectrl into .venv/demo first (skipped when
# up to date), then runs examples/two_agents.py with the options given.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
    cat <<'USAGE'
usage: bash examples/run_demo.sh [-h] [--otlp URL]

Two agents over HTTP on 127.0.0.1: three concurrent conversations of two turns each.
Checks that each conversation keeps one session across both agents, a thread pool and
a process pool, and that each turn is one trace of its own. Installs tracectrl into
.venv/demo on first run, then runs examples/two_agents.py.

options:
  -h, --help  show this help message and exit
  --otlp URL  also export both agents' spans over OTLP/HTTP to URL (sent to
              URL/v1/traces), each stamped with session.id, in the project
              tracectrl-demo; e.g. --otlp http://127.0.0.1:6006 for a local
              Arize Phoenix
USAGE
}
for argument in "$@"; do
    case "$argument" in
        -h | --help) usage; exit 0 ;;
    esac
done

PYENV_ROOT="${PYENV_ROOT:-$HOME/.pyenv}"
python=""
for minor in 3.13 3.12 3.11 3.10 3.9; do
    candidate=$(ls -d "$PYENV_ROOT/versions/$minor".[0-9]* 2>/dev/null | sort -V | tail -n 1) || true
    if [ -n "$candidate" ]; then python="$candidate/bin/python"; break; fi
done
[ -n "$python" ] || python=$(command -v python3)
venv=.venv/demo
packages=(-e ".[requests,otel]" "opentelemetry-exporter-otlp-proto-http>=1.20")
want="${packages[*]} $(sha256sum pyproject.toml | cut -c1-16)"
if [ ! -f "$venv/.tracectrl-installed" ] || [ "$(cat "$venv/.tracectrl-installed")" != "$want" ]; then
    rm -rf "$venv"
    "$python" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --upgrade pip
    "$venv/bin/python" -m pip install --quiet "${packages[@]}"
    echo "$want" >"$venv/.tracectrl-installed"
fi
exec "$venv/bin/python" examples/two_agents.py "$@"
