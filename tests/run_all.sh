#!/usr/bin/env bash
# Every check tracectrl has, from a fresh clone: installs what it needs into .venv/,
# then runs ruff, mypy --strict, the strict docs build and its screenshots, pytest on every pyenv
# Python 3.9-3.13 (and the core tests again without OpenTelemetry), and every example.  Exits
# non-zero on the first failure.
set -euo pipefail
cd "$(dirname "$0")/.."

PYENV_ROOT="${PYENV_ROOT:-$HOME/.pyenv}"
MINORS=(3.9 3.10 3.11 3.12 3.13)
TOOLS_MINOR=3.13  # the interpreter that runs ruff, mypy, the docs build and the examples

log() { printf '\n==> %s\n' "$*"; }

interpreter() {  # the newest pyenv CPython of one minor version, or nothing
    local candidates
    candidates=$(ls -d "$PYENV_ROOT/versions/$1".[0-9]* 2>/dev/null | sort -V) || true
    [ -n "$candidates" ] && printf '%s/bin/python\n' "$(tail -n 1 <<<"$candidates")"
}

setup_venv() {  # setup_venv MINOR EXTRAS: create .venv/pyMINOR and install the project into it
    local minor=$1 extras=$2 python venv stamp want
    python=$(interpreter "$minor")
    venv=".venv/py$minor"
    want="$extras $(cat pyproject.toml | sha256sum | cut -c1-16)"
    stamp="$venv/.tracectrl-installed"
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
        return 0
    fi
    rm -rf "$venv"
    "$python" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --upgrade pip
    "$venv/bin/python" -m pip install --quiet -e ".[$extras]"
    echo "$want" >"$stamp"
}

log "Python interpreters"
for minor in "${MINORS[@]}"; do
    python=$(interpreter "$minor")
    if [ -z "$python" ]; then
        echo "error: no pyenv Python $minor under $PYENV_ROOT/versions; install it with 'pyenv install $minor'" >&2
        exit 1
    fi
    echo "$minor: $python"
done

log "redis-server (the Celery tests' broker)"
if ! command -v redis-server >/dev/null 2>&1; then
    echo "redis-server is missing: installing Debian's package"
    apt-get update -qq && apt-get install -y -qq redis-server
fi
redis-server --version

log "Installing into .venv/ (skipped where pyproject.toml is unchanged, and Phoenix where cached)"
mkdir -p .venv
pids=()
for minor in "${MINORS[@]}"; do
    extras=test
    [ "$minor" = "$TOOLS_MINOR" ] && extras=dev
    setup_venv "$minor" "$extras" >".venv/setup-$minor.log" 2>&1 &
    pids+=("$!")
done
# Phoenix, for the end-to-end tests in tests/phoenix, in a venv of its own (cached by version).
bash tests/phoenix/setup_phoenix.sh >".venv/setup-phoenix.log" 2>&1 &
phoenix_pid=$!
status=0
for i in "${!pids[@]}"; do
    if ! wait "${pids[$i]}"; then
        echo "error: installing into .venv/py${MINORS[$i]} failed:" >&2
        cat ".venv/setup-${MINORS[$i]}.log" >&2
        status=1
    fi
    rm -f ".venv/setup-${MINORS[$i]}.log"
done
if ! wait "$phoenix_pid"; then
    echo "error: installing Phoenix with tests/phoenix/setup_phoenix.sh failed:" >&2
    cat ".venv/setup-phoenix.log" >&2
    status=1
fi
rm -f ".venv/setup-phoenix.log"
[ "$status" = 0 ] || exit "$status"
TOOLS=".venv/py$TOOLS_MINOR/bin"

log "ruff"
"$TOOLS/ruff" check src tests examples
"$TOOLS/ruff" format --check src tests examples

log "mypy --strict (src and tests/typing)"
"$TOOLS/mypy"

log "docs: mkdocs build --strict"
NO_MKDOCS_2_WARNING=1 "$TOOLS/mkdocs" build --strict --quiet --config-file docs/mkdocs.yml --site-dir "$(mktemp -d)"

log "engine tests (marker 'engines': Celery on redis-server, Dask, Ray) per interpreter"
for minor in "${MINORS[@]}"; do
    ".venv/py$minor/bin/python" - "$minor" <<'PY'
import importlib.util, sys
engines = {"celery": "Celery", "distributed": "Dask", "ray": "Ray"}
missing = [name for module, name in engines.items() if importlib.util.find_spec(module) is None]
print(f"Python {sys.argv[1]}: " + (f"SKIPPED (no wheel installed): {', '.join(missing)}" if missing else "all engine tests run"))
PY
done

log "docs: screenshots at 1400 and 390 px; no page wider than the window"
if ! command -v chromium >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium
fi
"$TOOLS/python" docs/scripts/screenshots.py --out .screenshots

# Every test on every interpreter, except the Phoenix end-to-end suite: it checks a
# dashboard, not the interpreter, and starting Phoenix takes about a minute, so it
# runs once, on the tools interpreter.
for minor in "${MINORS[@]}"; do
    if [ "$minor" = "$TOOLS_MINOR" ]; then
        log "pytest on Python $minor (with the Phoenix end-to-end tests)"
        ".venv/py$minor/bin/python" -m pytest -q -p no:cacheprovider
    else
        log "pytest on Python $minor (the Phoenix end-to-end tests run on $TOOLS_MINOR)"
        ".venv/py$minor/bin/python" -m pytest -q -p no:cacheprovider -m "not phoenix"
    fi
done

# The core tests once more per interpreter with OpenTelemetry and OpenInference made
# unimportable (TRACECTRL_TESTS_WITHOUT_OPENTELEMETRY, see tests/conftest.py), as on a machine
# that has neither: the venvs have them for the other tests.  Left out: the modules that import
# them to run at all, the tests of the OpenTelemetry path (named so, or the fixture's
# "opentelemetry" parameter), and langsmith's pytest plugin, which imports OpenTelemetry.
NEEDS_OPENTELEMETRY="test_comparisons.py test_regressions.py test_docs.py test_mutation_gaps_processes.py"
without_opentelemetry=()
for test_file in tests/test_*.py; do
    [[ " $NEEDS_OPENTELEMETRY " == *" ${test_file#tests/} "* ]] || without_opentelemetry+=("$test_file")
done
for minor in "${MINORS[@]}"; do
    log "pytest on Python $minor without OpenTelemetry (the core tests)"
    TRACECTRL_TESTS_WITHOUT_OPENTELEMETRY=1 ".venv/py$minor/bin/python" -m pytest -q \
        -p no:cacheprovider -p no:langsmith_plugin -m "not engines and not phoenix" \
        -k "not opentelemetry" \
        --deselect "tests/test_context.py::test_the_trace_lives_where_the_backend_under_test_keeps_it[contextvar]" \
        "${without_opentelemetry[@]}"
done

log "examples"
for example in examples/*.py; do
    echo "--- $example"
    "$TOOLS/python" "$example"
done

log "all checks passed"
