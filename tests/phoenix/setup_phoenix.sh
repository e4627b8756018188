#!/usr/bin/env bash
# Creates .venv/phoenix-<version>, a venv holding only Arize Phoenix, if it is missing.
# Phoenix has its own (large) dependency tree, so it never shares a venv with tracectrl;
# the end-to-end test runs `phoenix serve` from here and talks to it over HTTP only.
# Idempotent: a finished venv carries a stamp file and is reused as it is.
# Prints the venv's path on its last line.
set -euo pipefail
cd "$(dirname "$0")/../.."

PHOENIX_VERSION="${PHOENIX_VERSION:-20.26.1}"
PYENV_ROOT="${PYENV_ROOT:-$HOME/.pyenv}"
PHOENIX_MINOR="${PHOENIX_MINOR:-3.12}"
venv=".venv/phoenix-$PHOENIX_VERSION"
stamp="$venv/.phoenix-installed"

installed() { [ -f "$stamp" ] && [ "$(cat "$stamp")" = "arize-phoenix==$PHOENIX_VERSION" ]; }
if installed; then
    echo "$PWD/$venv"
    exit 0
fi
# One installer at a time (test runs on several interpreters may start together).
mkdir -p .venv
exec 9>".venv/phoenix-$PHOENIX_VERSION.lock"
flock 9
if installed; then
    echo "$PWD/$venv"
    exit 0
fi

python=$(ls -d "$PYENV_ROOT/versions/$PHOENIX_MINOR".[0-9]* 2>/dev/null | sort -V | tail -n 1) || true
if [ -z "$python" ]; then
    echo "error: no pyenv Python $PHOENIX_MINOR under $PYENV_ROOT/versions for Phoenix; install it with 'pyenv install $PHOENIX_MINOR'" >&2
    exit 1
fi
rm -rf "$venv"
"$python/bin/python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet "arize-phoenix==$PHOENIX_VERSION"
"$venv/bin/phoenix" --help >/dev/null
echo "arize-phoenix==$PHOENIX_VERSION" >"$stamp"
echo "$PWD/$venv"
