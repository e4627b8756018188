"""Mutation testing of the core: does some test fail when the code is changed a little?

Usage, from the repository root, with the development environment (``pip install -e ".[dev]"``)::

    python tests/mutation/run.py                      # every core module
    python tests/mutation/run.py scope _tokens        # some modules
    python tests/mutation/run.py --list scope         # the mutants only, nothing run

Each mutant is one small change to one line of a core module: a comparison
flipped (``<`` to ``<=``, ``is`` to ``is not``...), ``and``/``or`` swapped, a
``not`` dropped, ``True``/``False`` swapped, an integer moved by one, ``+``/``-``
swapped, a call statement dropped (a ``reset``, ``remove``, ``clear``, ``append``),
an exception handler made to re-raise, ``break`` made ``continue``.

1. Coverage pass: the whole test suite runs once under ``coverage`` with one
   dynamic context per test, child processes included (``COVERAGE_PROCESS_START``
   and ``concurrency = multiprocessing``), so each line maps to the tests that run it.
2. Mutant pass: each mutant is written into a private copy of the repository
   (one per worker, ``--workers`` of them in parallel) and only the tests that
   cover its line run, fastest first, stopping at the first failure.  A mutant
   is *killed* when a test fails or times out, *survives* when they all pass,
   and is *not covered* when no test runs its line.
3. The table: per module, mutants, killed, survived (not covered included),
   the mutants reviewed as equivalent (``equivalent.txt``: no observable
   change, one line of reason each) and the score, killed / (all - equivalent).

Not part of the default ``pytest`` run: pytest collects no ``test_*.py`` here.
Exit status 0 when every module scores at least ``--min-score`` (default 95).
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import itertools
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
PACKAGE = Path("src/tracectrl")
EQUIVALENT_FILE = HERE / "equivalent.txt"
CORE_MODULES = (
    "session",
    "_sessionvar",
    "scope",
    "_unit",
    "_span",
    "_tokens",
    "_split_dependency",
    "_snapshot",
    "_trace",
    "_tracecontext",
    "_baggage",
    "_headers",
    "_wire",
    "_trust",
    "context",
    "_continuation",
    "executors",
    "_contextcopy",
)
# What a private copy of the repository needs for the tests to run.
COPIED = ("src", "tests", "docs", "examples", "pyproject.toml", "README.md", "mypy.ini")
IGNORED_IN_COPY = shutil.ignore_patterns(
    "__pycache__", "*.pyc", ".hypothesis", ".pytest_cache", "site", ".venv", "mutation"
)
# Calls whose removal changes only what is logged: not mutated.
LOGGING_NAMES = frozenset({"_log", "logging", "log", "logger"})
NO_MUTATE = "pragma: no mutate"
# Plugins the tests do not use cost seconds of start-up per mutant: switched off.
PYTEST_ARGS = (
    "-q", "-p", "no:cacheprovider", "--no-header",
    "-p", "no:langsmith_plugin", "-p", "no:platformdirs", "-p", "no:anyio",
)  # fmt: skip
HYPOTHESIS_ARGS = ("--hypothesis-seed=0",)
SELECT_ARGS = ("-p", "_select_plugin")
NO_HYPOTHESIS_ARGS = ("-p", "no:hypothesispytest")
CHILD_CONTEXT_VARIABLE = "TRACECTRL_MUTATION_CHILD_CONTEXT"
CHILD_PREFIX = "child:"


@dataclass(frozen=True)
class Mutant:
    """One change to one module: bytes ``start:end`` of the source become ``replacement``."""

    module: str
    line: int
    start: int
    end: int
    replacement: str
    operator: str
    #: The lines whose coverage decides which tests run: the statement's (its header's).
    covered_lines: tuple[int, ...]
    source_line: str
    #: The line runs when the module is imported (not inside a function body).
    import_time: bool
    #: For a module-level assignment: the names it binds, whose readers' tests run.
    names: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        """How ``equivalent.txt`` names the mutant: module, operator, line text (not its number)."""
        return f"{self.module}.py :: {self.operator} :: {self.source_line.strip()}"

    def apply(self, source: bytes) -> bytes:
        return source[: self.start] + self.replacement.encode() + source[self.end :]


@dataclass
class Result:
    mutant: Mutant
    status: str  # killed, survived, not covered, equivalent
    tests: int = 0
    seconds: float = 0.0
    detail: str = ""


@dataclass
class _Positions:
    source: bytes
    line_starts: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        offset = 0
        for line in self.source.splitlines(keepends=True):
            self.line_starts.append(offset)
            offset += len(line)
        self.line_starts.append(offset)

    def start(self, node: ast.AST) -> int:
        return self.line_starts[node.lineno - 1] + node.col_offset  # type: ignore[attr-defined]

    def end(self, node: ast.AST) -> int:
        return self.line_starts[node.end_lineno - 1] + node.end_col_offset  # type: ignore[attr-defined]

    def line_text(self, line: int) -> str:
        return self.source[self.line_starts[line - 1] : self.line_starts[line]].decode()


_COMPARISONS: dict[type[ast.cmpop], tuple[str, str]] = {
    ast.Lt: ("<", "<="),
    ast.LtE: ("<=", "<"),
    ast.Gt: (">", ">="),
    ast.GtE: (">=", ">"),
    ast.Eq: ("==", "!="),
    ast.NotEq: ("!=", "=="),
    ast.Is: ("is", "is not"),
    ast.IsNot: ("is not", "is"),
    ast.In: ("in", "not in"),
    ast.NotIn: ("not in", "in"),
}


class _MutantFinder(ast.NodeVisitor):
    """Walk one module and collect its mutants, skipping what cannot change behaviour."""

    def __init__(self, module: str, source: bytes) -> None:
        self.module = module
        self.positions = _Positions(source)
        self.mutants: list[Mutant] = []
        self._statement: ast.stmt | None = None
        self._function_depth = 0
        self._class_depth = 0

    # --- where not to look -------------------------------------------------
    def visit_If(self, node: ast.If) -> None:
        if isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            return
        self._negate(node, node.test)
        self._visit_statement(node)

    def visit_IfExp(self, node: ast.IfExp) -> None:
        self._negate(node, node.test)
        super().generic_visit(node)

    def visit_While(self, node: ast.While) -> None:
        self._negate(node, node.test)
        self._visit_statement(node)

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self._visit_function(node)

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> None:
        self._visit_function(node)

    def _visit_function(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        if any(_name_of(decorator) == "overload" for decorator in node.decorator_list):
            return
        previous, self._statement = self._statement, node
        # Annotations and the docstring never run as code that a test could observe.
        for decorator in node.decorator_list:
            self.visit(decorator)
        # A default is read by the calls: the tests of the body's first line run.
        body = _without_docstring(node.body)
        self._statement = body[0] if body else node
        self._function_depth += 1
        for default in [*node.args.defaults, *node.args.kw_defaults]:
            if default is not None:
                self.visit(default)
        self._function_depth -= 1
        self._statement = previous
        self._function_depth += 1
        for statement in _without_docstring(node.body):
            self.visit(statement)
        self._function_depth -= 1

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        previous, self._statement = self._statement, node
        for decorator in node.decorator_list:
            self.visit(decorator)
        self._statement = previous
        self._class_depth += 1
        for statement in _without_docstring(node.body):
            self.visit(statement)
        self._class_depth -= 1

    def visit_Module(self, node: ast.Module) -> None:
        for statement in _without_docstring(node.body):
            self.visit(statement)

    def visit_Assign(self, node: ast.Assign) -> None:
        if any(isinstance(t, ast.Name) and t.id in ("__all__", "__slots__") for t in node.targets):
            return
        if all(isinstance(target, ast.Subscript) for target in node.targets):
            self._add(node, "pass", "drop item store")
        self._visit_statement(node)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        previous, self._statement = self._statement, node
        if node.value is not None:
            self.visit(node.value)
        self._statement = previous

    def visit_Expr(self, node: ast.Expr) -> None:
        call = node.value.value if isinstance(node.value, ast.Await) else node.value
        if isinstance(call, ast.Call) and not _is_logging(call):
            self._add(node, "pass", "drop call")
        self._visit_statement(node)

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> None:
        first, last = node.body[0], node.body[-1]
        if not (len(node.body) == 1 and isinstance(first, ast.Raise) and first.exc is None):
            start, end = self.positions.start(first), self.positions.end(last)
            previous, self._statement = self._statement, first
            self._add_span(start, end, "raise", "handler re-raises", first.lineno)
            self._statement = previous
        if node.type is not None:
            previous, self._statement = self._statement, first
            self.visit(node.type)
            self._statement = previous
        for statement in node.body:
            self.visit(statement)

    def visit_Break(self, node: ast.Break) -> None:
        self._add(node, "continue", "break -> continue")

    def generic_visit(self, node: ast.AST) -> None:
        if isinstance(node, ast.stmt):
            self._visit_statement(node)
        else:
            super().generic_visit(node)

    def _visit_statement(self, node: ast.stmt) -> None:
        previous, self._statement = self._statement, node
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.stmt):
                self._statement = previous
                self.visit(child)
                self._statement = node
            else:
                self.visit(child)
        self._statement = previous

    # --- the mutations -----------------------------------------------------
    def visit_Compare(self, node: ast.Compare) -> None:
        left: ast.expr = node.left
        for op, right in zip(node.ops, node.comparators):
            old, new = _COMPARISONS[type(op)]
            self._replace_between(left, right, old, new, f"{old} -> {new}")
            left = right
        super().generic_visit(node)

    def visit_BoolOp(self, node: ast.BoolOp) -> None:
        old, new = ("and", "or") if isinstance(node.op, ast.And) else ("or", "and")
        for left, right in zip(node.values, node.values[1:]):
            self._replace_between(left, right, old, new, f"{old} -> {new}")
        super().generic_visit(node)

    def visit_BinOp(self, node: ast.BinOp) -> None:
        swaps = {ast.Add: ("+", "-"), ast.Sub: ("-", "+")}
        swap = swaps.get(type(node.op))
        if swap is not None and not _is_text(node.left) and not _is_text(node.right):
            self._replace_between(node.left, node.right, *swap, f"{swap[0]} -> {swap[1]}")
        super().generic_visit(node)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        swaps = {ast.Add: ("+=", "-="), ast.Sub: ("-=", "+=")}
        swap = swaps.get(type(node.op))
        if swap is not None:
            self._replace_between(node.target, node.value, *swap, f"{swap[0]} -> {swap[1]}")
        self._visit_statement(node)

    def visit_UnaryOp(self, node: ast.UnaryOp) -> None:
        if isinstance(node.op, ast.Not):
            self._add(node, f"({self._text(node.operand)})", "drop not")
        super().generic_visit(node)

    def visit_Constant(self, node: ast.Constant) -> None:
        value = node.value
        if value is True or value is False:
            self._add(node, str(not value), f"{value} -> {not value}")
        elif type(value) is int:
            self._add(node, str(value + 1), f"{value} -> {value + 1}")

    # --- helpers -----------------------------------------------------------
    def _negate(self, statement: ast.AST, test: ast.expr) -> None:
        # Comparisons, and/or and not have their own mutants; these are the plain tests.
        if isinstance(test, (ast.Call, ast.Name, ast.Attribute, ast.Subscript)):
            previous = self._statement
            if isinstance(statement, ast.stmt):
                self._statement = statement
            self._add(test, f"not ({self._text(test)})", "negate condition")
            self._statement = previous

    def _text(self, node: ast.AST) -> str:
        return self.positions.source[self.positions.start(node) : self.positions.end(node)].decode()

    def _replace_between(
        self, left: ast.AST, right: ast.AST, old: str, new: str, operator: str
    ) -> None:
        start, end = self.positions.end(left), self.positions.start(right)
        segment = self.positions.source[start:end].decode()
        index = _find_operator(segment, old)
        if index < 0:
            raise ValueError(f"{self.module}: {old!r} not found in {segment!r}")
        begin = start + len(segment[:index].encode())
        self._add_span(begin, begin + len(old), new, operator, left.end_lineno)  # type: ignore[attr-defined]

    def _add(self, node: ast.AST, replacement: str, operator: str) -> None:
        self._add_span(
            self.positions.start(node),
            self.positions.end(node),
            replacement,
            operator,
            node.lineno,  # type: ignore[attr-defined]
        )

    def _add_span(self, start: int, end: int, replacement: str, operator: str, line: int) -> None:
        text = self.positions.line_text(line)
        if NO_MUTATE in text:
            return
        statement = self._statement
        covered = (line,) if statement is None else _header_lines(statement)
        names: tuple[str, ...] = ()
        if self._function_depth == self._class_depth == 0 and isinstance(
            statement, (ast.Assign, ast.AnnAssign)
        ):
            targets = statement.targets if isinstance(statement, ast.Assign) else [statement.target]
            names = tuple(t.id for t in targets if isinstance(t, ast.Name))
        self.mutants.append(
            Mutant(
                self.module,
                line,
                start,
                end,
                replacement,
                operator,
                covered,
                text,
                self._function_depth == 0,
                names,
            )
        )


def _header_lines(statement: ast.stmt) -> tuple[int, ...]:
    """The lines of ``statement`` that coverage records when it runs (not its body's)."""
    # Coverage records the lines a multi-line statement's code is on, not only its first.
    if isinstance(statement, (ast.If, ast.While)):
        end = statement.test.end_lineno
    elif isinstance(statement, (ast.For, ast.AsyncFor)):
        end = statement.iter.end_lineno
    elif isinstance(statement, (ast.With, ast.AsyncWith)):
        end = max(item.context_expr.end_lineno or 0 for item in statement.items)
    elif isinstance(statement, (ast.Try, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        end = statement.lineno
    else:
        end = statement.end_lineno
    return tuple(range(statement.lineno, (end or statement.lineno) + 1))


def _find_operator(segment: str, operator: str) -> int:
    if operator[0].isalpha():
        words = operator.split()
        position = 0
        while True:
            index = segment.find(words[0], position)
            if index < 0:
                return -1
            before = segment[index - 1] if index else " "
            if not (before.isalnum() or before == "_"):
                rest = segment[index:].split()
                if rest[: len(words)] == words:
                    return index
            position = index + 1
    return segment.find(operator)


def _without_docstring(body: list[ast.stmt]) -> list[ast.stmt]:
    first = body[0] if body else None
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
        return body[1:]
    return body


def _name_of(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Call):
        return _name_of(node.func)
    return ""


def _is_logging(call: ast.Call) -> bool:
    func = call.func
    while isinstance(func, (ast.Attribute, ast.Call)):
        func = func.value if isinstance(func, ast.Attribute) else func.func
    return isinstance(func, ast.Name) and func.id in LOGGING_NAMES


def _is_text(node: ast.AST) -> bool:
    return isinstance(node, ast.JoinedStr) or (
        isinstance(node, ast.Constant) and isinstance(node.value, str)
    )


def find_mutants(module: str, root: Path = ROOT) -> list[Mutant]:
    """Return every mutant of core module ``module`` (e.g. ``"scope"``), in source order."""
    source = (root / PACKAGE / f"{module}.py").read_bytes()
    finder = _MutantFinder(module, source)
    finder.visit(ast.parse(source))
    mutants = sorted(finder.mutants, key=lambda m: (m.start, m.operator))
    # The same change twice on one line needs two names.
    seen: dict[str, int] = defaultdict(int)
    named = []
    for mutant in mutants:
        seen[mutant.key] += 1
        count = seen[mutant.key]
        named.append(
            mutant
            if count == 1
            else dataclasses.replace(mutant, operator=f"{mutant.operator} (#{count})")
        )
    return named


def readers_of_names(modules: Sequence[str] = CORE_MODULES) -> dict[str, set[tuple[str, int]]]:
    """Return, for each name read in a function body of a core module, the statements reading it."""
    readers: dict[str, set[tuple[str, int]]] = defaultdict(set)
    for module in modules:
        tree = ast.parse((ROOT / PACKAGE / f"{module}.py").read_bytes())
        for function in ast.walk(tree):
            if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for statement in ast.walk(function):
                if not isinstance(statement, ast.stmt) or statement is function:
                    continue
                lines = _header_lines(statement)
                for child in ast.iter_child_nodes(statement):
                    if isinstance(child, ast.stmt):
                        continue
                    for node in ast.walk(child):
                        name = node.id if isinstance(node, ast.Name) else None
                        if isinstance(node, ast.Attribute):
                            name = node.attr
                        if name is not None:
                            readers[name].update((module, line) for line in lines)
    return readers


def read_equivalents(path: Path = EQUIVALENT_FILE) -> dict[str, str]:
    """Return ``{mutant key: reason}`` from the reviewed list (``#`` lines are comments)."""
    equivalents: dict[str, str] = {}
    if not path.exists():
        return equivalents
    for raw in path.read_text(encoding="utf-8").splitlines():
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        parts = raw.split(" :: ")
        if len(parts) < 4:
            raise ValueError(f"{path.name}: expected 'module :: operator :: line :: reason': {raw}")
        equivalents[" :: ".join(parts[:-1])] = parts[-1]
    return equivalents


# --- the coverage pass ------------------------------------------------------


def copy_repository(target: Path) -> Path:
    target.mkdir(parents=True)
    for name in COPIED:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, target / name, ignore=IGNORED_IN_COPY)
        elif source.exists():
            shutil.copy2(source, target / name)
    return target


def environment(copy: Path) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("COVERAGE_", "TRACECTRL_", "OTEL_"))
    }
    env["PYTHONPATH"] = os.pathsep.join(
        [str(copy / "src"), *filter(None, [os.environ.get("PYTHONPATH")])]
    )
    return env


CoverageMap = dict[str, dict[int, set[str]]]


def coverage_pass(
    work: Path, python: str, selection: Sequence[str] = ()
) -> tuple[CoverageMap, dict[str, float]]:
    """Run the suite once under coverage; return ``{module: {line: node ids}}`` and durations.

    ``selection``: pytest arguments (``-m``, ``--deselect``) that leave tests out.
    """
    copy = copy_repository(work / "coverage-copy")
    data_dir = work / "coverage-data"
    data_dir.mkdir()
    rcfile = work / "coveragerc"
    rcfile.write_text(
        textwrap.dedent(
            f"""\
            [run]
            source = {copy / PACKAGE}
            parallel = True
            data_file = {data_dir / ".coverage"}
            concurrency = thread, multiprocessing
            sigterm = True
            context = ${{{CHILD_CONTEXT_VARIABLE}}}
            """
        ),
        encoding="utf-8",
    )
    durations_file = work / "durations.json"
    env = environment(copy)
    env["PYTHONPATH"] += os.pathsep + str(HERE)
    env["TRACECTRL_MUTATION_RCFILE"] = str(rcfile)
    env["TRACECTRL_MUTATION_DURATIONS"] = str(durations_file)
    command = [
        python, "-m", "coverage", "run", f"--rcfile={rcfile}",
        "-m", "pytest", *PYTEST_ARGS, *HYPOTHESIS_ARGS, "-p", "_coverage_plugin", *selection,
    ]  # fmt: skip
    started = time.perf_counter()
    completed = subprocess.run(
        command, cwd=copy, env=env, capture_output=True, text=True, check=False
    )
    if completed.returncode != 0:
        sys.exit(
            "the test suite fails without any mutant; fix it first:\n"
            + completed.stdout[-4000:]
            + completed.stderr[-4000:]
        )
    print(f"coverage pass: {time.perf_counter() - started:.0f} s", flush=True)
    subprocess.run(
        [python, "-m", "coverage", "combine", f"--rcfile={rcfile}", "-q"],
        cwd=copy, env=env, check=True,
    )  # fmt: skip
    report = json.loads(durations_file.read_text(encoding="utf-8"))
    durations: dict[str, float] = report["durations"]
    by_line = _tests_by_line(data_dir / ".coverage", copy, durations, set(report["with_children"]))
    # A test that replaced coverage's trace function ran lines nobody recorded: it
    # may reach any line, so it is a candidate for every mutant (run last: slowest).
    blind = set(report.get("blind", ()))
    if blind:
        print(f"tests that hid lines from coverage, tried on every mutant: {len(blind)}")
        for module_file in (copy / PACKAGE).glob("*.py"):
            lines = by_line.setdefault(module_file.stem, {})
            count = len(module_file.read_text(encoding="utf-8").splitlines())
            for line in range(1, count + 1):
                lines.setdefault(line, set()).update(blind)
    return by_line, durations


def _tests_by_line(
    data_file: Path, copy: Path, durations: dict[str, float], with_children: set[str]
) -> CoverageMap:
    from coverage import CoverageData

    # A child process runs lines for the test that started it and, if it lives on
    # (a module-scoped pool), for the tests of the same file that ran while it did.
    by_file: dict[str, list[str]] = defaultdict(list)
    for node_id in with_children:
        by_file[node_id.split("::")[0]].append(node_id)
    data = CoverageData(basename=str(data_file))
    data.read()
    result: CoverageMap = {}
    for filename in data.measured_files():
        path = Path(filename)
        if path.parent != copy / PACKAGE:
            continue
        lines: dict[int, set[str]] = defaultdict(set)
        for line, contexts in data.contexts_by_lineno(filename).items():
            for context in contexts:
                node_id = context.rpartition("|")[2] if "|" in context else context
                if node_id.startswith(CHILD_PREFIX):
                    started_by = node_id[len(CHILD_PREFIX) :]
                    lines[line].add(started_by)
                    lines[line].update(by_file.get(started_by.split("::")[0], ()))
                elif node_id in durations:
                    lines[line].add(node_id)
                else:
                    lines[line].add("")  # import time: every test depends on it
        result[path.stem] = dict(lines)
    return result


# --- the mutant pass --------------------------------------------------------


def tests_for(
    mutant: Mutant,
    coverage_map: CoverageMap,
    durations: dict[str, float],
    readers: dict[str, set[tuple[str, int]]],
) -> list[str]:
    tests: set[str] = set()
    if mutant.import_time:
        # Runs at import, in every process: a module-level constant counts for the
        # tests of every function line that reads it; anything else, for all tests.
        for module, line in set().union(*(readers.get(name, set()) for name in mutant.names)):
            tests.update(c for c in coverage_map.get(module, {}).get(line, ()) if c)
        if not tests:
            tests = set(durations)
    else:
        lines = coverage_map.get(mutant.module, {})
        contexts = set().union(*(lines.get(line, set()) for line in mutant.covered_lines))
        tests = {c for c in contexts if c}
        if not tests and "" in contexts:
            tests = set(durations)  # run at collection time only
    return sorted(tests, key=lambda node_id: (durations.get(node_id, 0.0), node_id))


def _hypothesis_args(tests: list[str], copy: Path) -> tuple[str, ...]:
    # Property tests get a fixed seed; runs without them skip importing Hypothesis.
    for test_file in {test.split("::")[0] for test in tests}:
        path = copy / test_file
        if path.is_dir() or "hypothesis" in path.read_text(encoding="utf-8"):
            return HYPOTHESIS_ARGS
    return NO_HYPOTHESIS_ARGS


_stamps = itertools.count(1_000_000_000)
# The pytest runs in progress, each in its own process group, stopped if the runner is.
_running: set[subprocess.Popen[str]] = set()


def _write_source(target: Path, source: bytes) -> None:
    """Write ``source`` with an mtime no earlier write had, so that no stale .pyc is used."""
    target.write_bytes(source)
    stamp = next(_stamps)  # atomic under the GIL: worker threads never share one
    os.utime(target, (stamp, stamp))


def run_mutant(
    mutant: Mutant,
    tests: list[str],
    copies: queue.Queue[Path],
    python: str,
    durations: dict[str, float],
    *,
    selection: Sequence[str] = (),
) -> Result:
    if not tests:
        return Result(mutant, "not covered")
    copy = copies.get()
    target = copy / PACKAGE / f"{mutant.module}.py"
    original = target.read_bytes()
    # A mutant that loops for ever (``while not bits`` made ``while bits``) is killed by
    # the timeout; three times the unmutated duration leaves room for a loaded machine.
    timeout = 30 + 3 * sum(durations.get(t, 1.0) for t in tests)
    started = time.perf_counter()
    try:
        _write_source(target, mutant.apply(original))
        listing = copy / "selected-tests.txt"
        listing.write_text("\n".join(tests), encoding="utf-8")
        env = environment(copy)
        env["PYTHONPATH"] += os.pathsep + str(HERE)
        env["TRACECTRL_MUTATION_TESTS"] = str(listing)
        files = dict.fromkeys(test.split("::")[0] for test in tests)
        hypothesis = _hypothesis_args(tests, copy)
        process = subprocess.Popen(
            [
                python,
                "-m",
                "pytest",
                *PYTEST_ARGS,
                "-x",
                *SELECT_ARGS,
                *hypothesis,
                *selection,
                *files,
            ],
            cwd=copy,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        _running.add(process)
        try:
            output, _ = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            return Result(mutant, "killed", len(tests), time.perf_counter() - started, "timeout")
        finally:
            _running.discard(process)
    finally:
        _write_source(target, original)
        copies.put(copy)
    seconds = time.perf_counter() - started
    if process.returncode == 0:
        return Result(mutant, "survived", len(tests), seconds)
    if process.returncode in (1, 3):  # tests failed, or a fixture/module import failed
        failed = [line for line in output.splitlines() if line.startswith(("FAILED", "ERROR"))]
        return Result(mutant, "killed", len(tests), seconds, failed[0] if failed else "")
    if process.returncode < 0:  # stopped by a signal
        return Result(mutant, "killed", len(tests), seconds, f"signal {-process.returncode}")
    # 2 (interrupted), 4 (usage error), 5 (no tests ran): the run says nothing about the mutant.
    raise RuntimeError(f"pytest exit {process.returncode} for {mutant.key}:\n{output[-2000:]}")


def print_table(results: Sequence[Result], modules: Sequence[str]) -> list[str]:
    width = max(len(name) for name in [*modules, "module"])
    header = (
        f"| {'module':<{width}} | {'mutants':>7} | {'killed':>6} | {'survived':>8} |"
        f" {'not covered':>11} | {'equivalent':>10} | {'score':>6} |"
    )
    lines = [header, "|" + "|".join("-" * (len(cell)) for cell in header.split("|")[1:-1]) + "|"]
    for module in [*modules, "all"]:
        counts: dict[str, int] = defaultdict(int)
        for result in results:
            if module in ("all", result.mutant.module):
                counts[result.status] += 1
        total = sum(counts.values())
        real = total - counts["equivalent"]
        score = 100.0 * counts["killed"] / real if real else 100.0
        lines.append(
            f"| {module:<{width}} | {total:>7} | {counts['killed']:>6} | {counts['survived']:>8} |"
            f" {counts['not covered']:>11} | {counts['equivalent']:>10} | {score:>5.1f}% |"
        )
    return lines


#: The tests a run leaves out unless told otherwise (``-m``).
DEFAULT_MARKERS = "not phoenix and not engines"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "modules", nargs="*", help=f"core modules (default: {' '.join(CORE_MODULES)})"
    )
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--list", action="store_true", help="print the mutants and stop")
    parser.add_argument("--min-score", type=float, default=95.0)
    parser.add_argument("--json", type=Path, help="also write every result here")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument(
        "--resume",
        type=Path,
        help="a --json file of an earlier run of the same code: its killed mutants are "
        "counted as killed again, only the others run",
    )
    parser.add_argument(
        "--only", action="append", default=[], help="only mutants whose name contains this text"
    )
    parser.add_argument(
        "--tests",
        nargs="+",
        help="run these tests against each mutant instead of the ones that cover it "
        "(no coverage pass: to see a new test kill its mutant)",
    )
    parser.add_argument(
        "-m",
        dest="markers",
        default=DEFAULT_MARKERS,
        help="only tests matching this pytest marker expression (default: %(default)r: the "
        "Phoenix and engine suites start servers and clusters and reach no core line the "
        "others miss; -m '' runs every test); mutants only the left-out tests reach are "
        "reported not covered",
    )
    parser.add_argument(
        "--deselect",
        action="append",
        default=[],
        metavar="NODE_ID",
        help="leave out a test (a node id prefix) that fails without any mutant, so that "
        "it kills none; the run prints what it left out",
    )
    args = parser.parse_args(argv)
    selection = (
        *(("-m", args.markers) if args.markers else ()),
        *(f"--deselect={node_id}" for node_id in args.deselect),
    )
    if selection:
        print(f"tests left out: {' '.join(selection)}", flush=True)
    modules = args.modules or list(CORE_MODULES)
    unknown = sorted(set(modules) - set(CORE_MODULES))
    if unknown:
        parser.error(f"not a core module: {', '.join(unknown)}")

    equivalents = read_equivalents()
    mutants = [mutant for module in modules for mutant in find_mutants(module)]
    keys = {mutant.key for mutant in mutants}
    if args.only:
        mutants = [m for m in mutants if any(text in m.key for text in args.only)]
    if args.list:
        for mutant in mutants:
            mark = "  (equivalent)" if mutant.key in equivalents else ""
            print(f"{mutant.module}.py:{mutant.line}: {mutant.key}{mark}")
        print(f"{len(mutants)} mutants")
        return 0
    for key in sorted(equivalents):
        if key.split(".py :: ")[0] in modules and key not in keys:
            print(f"warning: equivalent.txt names a mutant that no longer exists: {key}")

    python = sys.executable
    started = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="tracectrl-mutation-"))
    try:
        if args.tests:
            coverage_map, durations = {}, {}
        else:
            coverage_map, durations = coverage_pass(work, python, selection)
        readers = readers_of_names()
        copies: queue.Queue[Path] = queue.Queue()
        for index in range(args.workers):
            copies.put(copy_repository(work / f"worker-{index}"))
        results: list[Result] = []
        to_run = []
        killed_before: set[str] = set()
        if args.resume:
            earlier = json.loads(args.resume.read_text(encoding="utf-8"))
            killed_before = {
                r["key"]
                for r in earlier
                if r["status"] == "killed" and not r["detail"].startswith("pytest exit")
            }
        for mutant in mutants:
            if mutant.key in equivalents:
                results.append(Result(mutant, "equivalent", detail=equivalents[mutant.key]))
            elif mutant.key in killed_before:
                results.append(Result(mutant, "killed", detail=f"in {args.resume}"))
            else:
                to_run.append(mutant)
        if args.resume:
            print(f"{len(killed_before)} killed mutants taken from {args.resume}", flush=True)
        print(f"{len(mutants)} mutants, {len(to_run)} to run on {args.workers} workers", flush=True)
        pool = ThreadPoolExecutor(args.workers)
        try:
            futures = [
                pool.submit(
                    run_mutant,
                    m,
                    args.tests or tests_for(m, coverage_map, durations, readers),
                    copies,
                    python,
                    durations,
                    selection=selection,
                )
                for m in to_run
            ]
            for done, future in enumerate(futures, 1):
                result = future.result()
                results.append(result)
                if result.status != "killed":
                    status = f"{result.status}: {result.mutant.key}"
                    print(f"  [{done}/{len(to_run)}] {status}", flush=True)
                elif done % 50 == 0:
                    print(f"  [{done}/{len(to_run)}]", flush=True)
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
    finally:
        for process in list(_running):
            os.killpg(process.pid, signal.SIGKILL)
        if args.keep:
            print(f"work directory kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    results.sort(key=lambda r: (modules.index(r.mutant.module), r.mutant.start, r.mutant.operator))
    table = print_table(results, modules)
    print()
    print("\n".join(table))
    survivors = [r for r in results if r.status in ("survived", "not covered")]
    if survivors:
        print("\nSurvivors (add a test that fails on each, or review it into equivalent.txt):")
        for result in survivors:
            m = result.mutant
            print(f"  {m.module}.py:{m.line} [{result.status}, {result.tests} tests] {m.key}")
    minutes = (time.perf_counter() - started) / 60
    print(f"\n{len(results)} mutants in {minutes:.1f} min on {args.workers} workers")
    if args.json:
        args.json.write_text(
            json.dumps(
                [
                    {
                        "key": r.mutant.key,
                        "line": r.mutant.line,
                        "status": r.status,
                        "tests": r.tests,
                        "seconds": round(r.seconds, 2),
                        "detail": r.detail,
                    }
                    for r in results
                ],
                indent=1,
            ),
            encoding="utf-8",
        )
    scores = _scores(results, modules)
    return 0 if all(score >= args.min_score for score in scores.values()) else 1


def _scores(results: Sequence[Result], modules: Sequence[str]) -> dict[str, float]:
    scores = {}
    for module in modules:
        mine = [r for r in results if r.mutant.module == module and r.status != "equivalent"]
        killed = sum(r.status == "killed" for r in mine)
        scores[module] = 100.0 * killed / len(mine) if mine else 100.0
    return scores


if __name__ == "__main__":
    sys.exit(main())
