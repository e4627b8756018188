"""The docs: every code block runs, every other block says why not, every public name is documented.

The convention for pages under ``docs/pages/``:

* every fenced ``python`` block is executed; the blocks of one page run in
  order, in one fresh ``__main__`` namespace, in a subprocess (so a
  ``new_session()`` on a page never leaks into the test process), exactly as
  written: a reader copies them into Python 3.9 too, so a block that needs
  ``from __future__ import annotations`` says so itself;
* every such block also runs *alone*, in a fresh interpreter of its own, as a
  reader who pastes just that block would run it: it has its own imports and
  starts what it needs.  What it prints is what its ``print(...)  # -> value``
  comments say, in order (a ``# -> value`` line of its own works too, for a
  loop or a log line written to stdout); ``...`` in a value matches anything,
  and ``# -> e.g. value`` is an illustration that is not compared.  It shows
  results with ``print``, not ``assert``, and its lines fit in 88 columns, so
  nothing scrolls sideways;
* a block preceded by the line ``<!-- not-run: <reason> -->`` is not run;
* every other fenced block (``bash``, ``text``, ``json``...) must carry that
  marker too, so that nothing that looks like code escapes the tests unnoticed.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = DOCS / "pages"
REFERENCE = PAGES / "reference"
PYTHON_LANGUAGES = frozenset({"python", "py"})
PAGE_TIMEOUT_SECONDS = 120
MAX_CODE_COLUMNS = 88

# Pages written as one script (a block uses names from the blocks before it),
# not yet converted to stand-alone blocks.  They still run whole, in order; the
# stand-alone checks skip them until they are converted.  Empty this set as
# their owners convert them; a page not listed here must pass every check.
NOT_YET_STANDALONE: frozenset[str] = frozenset()

_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
_NOT_RUN = re.compile(r"^\s*<!--\s*not-run:(?P<reason>.*?)-->\s*$")
# "print(x)  # -> value", or a logging call whose handler writes to stdout.
_EXPECTED_OUTPUT = re.compile(r"#\s->\s(?P<value>.*)$")
_DIRECTIVE = re.compile(r"^:::\s+(?P<module>[\w.]+)\s*$", re.MULTILINE)

# Runs in the subprocess: the blocks arrive on stdin as JSON.  Each block is
# compiled with the page as its file name and its own line numbers, so a
# traceback points into the Markdown.  The namespace is a fresh module installed
# as __main__, so functions defined on a page can be pickled for a process pool.
# No compiler flag is passed and none is inherited: a block runs as a reader who
# copies it would run it.
_RUNNER = """
import json, sys, types
main = types.ModuleType("__main__")
sys.modules["__main__"] = main
for block in json.load(sys.stdin):
    padded = "\\n" * (block["line"] - 1) + block["source"]
    exec(compile(padded, block["path"], "exec", dont_inherit=True), main.__dict__)
"""


@dataclass(frozen=True)
class Block:
    """One fenced block of a page: where it starts, its language, its text, its marker."""

    path: str
    line: int  # the first line of the block's content, 1-based
    language: str
    source: str
    not_run_reason: str | None


def pages() -> list[Path]:
    return sorted(PAGES.rglob("*.md"))


def page_id(page: Path) -> str:
    return page.relative_to(PAGES).as_posix()


def fenced_blocks(page: Path, root: Path = ROOT) -> list[Block]:
    """Return the fenced blocks of ``page``, indented ones (in admonitions, lists) included."""
    lines = page.read_text(encoding="utf-8").splitlines()
    path = page.relative_to(root).as_posix()
    blocks = []
    index = 0
    while index < len(lines):
        opening = _FENCE.match(lines[index])
        if opening is None:
            index += 1
            continue
        indent, fence = len(opening["indent"]), opening["fence"]
        closing = re.compile(rf"^[ \t]*{re.escape(fence[0])}{{{len(fence)},}}[ \t]*$")
        end = index + 1
        while end < len(lines) and not closing.match(lines[end]):
            end += 1
        body = [
            line[indent:] if line[:indent].isspace() else line for line in lines[index + 1 : end]
        ]
        blocks.append(
            Block(
                path=path,
                line=index + 2,
                language=_language(opening["info"]),
                source="\n".join(body) + "\n",
                not_run_reason=_marker_before(lines, index),
            )
        )
        index = end + 1
    return blocks


def _language(info: str) -> str:
    # "python", "python title='x.py'", "{ .python }", "py linenums='1'" -> "python" / "py"
    words = info.strip().lstrip("{").replace(".", " ").split()
    return words[0].lower() if words else ""


def _marker_before(lines: list[str], fence_index: int) -> str | None:
    """Return the reason of a ``not-run`` marker on the last non-blank line before a fence."""
    for line in reversed(lines[:fence_index]):
        if line.strip():
            marker = _NOT_RUN.match(line)
            return None if marker is None else marker["reason"].strip()
    return None


def run_blocks(blocks: list[Block], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run ``blocks`` in order in one fresh interpreter, one namespace."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key != "TRACECTRL_SESSION_ID" and not key.startswith("OTEL_")
    }
    payload = [{"path": b.path, "line": b.line, "source": b.source} for b in blocks]
    return subprocess.run(
        [sys.executable, "-c", _RUNNER],
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=PAGE_TIMEOUT_SECONDS,
        check=False,
    )


@pytest.mark.parametrize("page", pages(), ids=page_id)
def test_python_blocks_of_the_page_run_in_order(page: Path, tmp_path: Path) -> None:
    runnable = [
        block
        for block in fenced_blocks(page)
        if block.language in PYTHON_LANGUAGES and block.not_run_reason is None
    ]
    if not runnable:
        return
    result = run_blocks(runnable, cwd=tmp_path)
    assert result.returncode == 0, (
        f"a python block of {page_id(page)} failed:\n{result.stderr}\n{result.stdout}"
    )


def standalone_blocks() -> list[Block]:
    """Return the runnable python blocks of every page converted to stand-alone blocks."""
    return [
        block
        for page in pages()
        if page_id(page) not in NOT_YET_STANDALONE
        for block in fenced_blocks(page)
        if block.language in PYTHON_LANGUAGES and block.not_run_reason is None
    ]


def block_id(block: Block) -> str:
    return f"{Path(block.path).relative_to('docs/pages').as_posix()}:{block.line}"


def expected_output(block: Block) -> list[str]:
    """Return the values of the block's ``# -> value`` comments, in order."""
    values = []
    for line in block.source.splitlines():
        match = _EXPECTED_OUTPUT.search(line)
        if match is not None and not match["value"].startswith("e.g."):
            values.append(match["value"].rstrip())
    return values


def output_matches(expected: list[str], printed: list[str]) -> bool:
    """Return whether ``expected`` lines appear, in order, among ``printed`` lines."""
    patterns = [
        re.compile(".*".join(re.escape(part) for part in value.split("...")) + r"\Z")
        for value in expected
    ]
    lines = iter(line.rstrip() for line in printed)
    return all(any(pattern.match(line) for line in lines) for pattern in patterns)


@pytest.mark.parametrize("block", standalone_blocks(), ids=block_id)
def test_python_block_runs_alone_and_prints_what_it_says(block: Block, tmp_path: Path) -> None:
    result = run_blocks([block], cwd=tmp_path)
    assert result.returncode == 0, (
        f"{block_id(block)} fails when run alone:\n{result.stderr}\n{result.stdout}"
    )
    expected = expected_output(block)
    assert output_matches(expected, result.stdout.splitlines()), (
        f"{block_id(block)} printed:\n{result.stdout}\nbut its comments say:\n"
        + "\n".join(expected)
    )


@pytest.mark.parametrize("block", standalone_blocks(), ids=block_id)
def test_python_block_shows_results_with_print_not_assert(block: Block) -> None:
    tree = ast.parse(block.source)
    asserts = [node.lineno for node in ast.walk(tree) if isinstance(node, ast.Assert)]
    assert not asserts, f"{block_id(block)}: assert on block line(s) {asserts}; print instead"


@pytest.mark.parametrize(
    "page", [p for p in pages() if page_id(p) not in NOT_YET_STANDALONE], ids=page_id
)
def test_code_lines_fit_in_88_columns(page: Path) -> None:
    wide = [
        f"{block.path}:{block.line + number}"
        for block in fenced_blocks(page)
        for number, line in enumerate(block.source.splitlines())
        if len(line) > MAX_CODE_COLUMNS
    ]
    assert not wide, f"code lines wider than {MAX_CODE_COLUMNS} columns: {wide}"


def test_expected_output_comments_are_compared_in_order_with_ellipsis() -> None:
    block = Block(
        "docs/pages/x.md",
        1,
        "python",
        "print(a)  # -> one\nprint(b)  # -> t...o\nprint(c)  # -> e.g. 4f2a\n",
        None,
    )
    assert expected_output(block) == ["one", "t...o"]
    assert output_matches(["one", "t...o"], ["zero", "one", "two"])
    assert not output_matches(["one", "t...o"], ["two", "one"])
    assert not output_matches(["one"], ["ones"])


@pytest.mark.parametrize("page", pages(), ids=page_id)
def test_every_block_that_is_not_run_says_why(page: Path) -> None:
    problems = []
    for block in fenced_blocks(page):
        where = f"{block.path}:{block.line - 1}"
        if block.not_run_reason == "":
            problems.append(f"{where}: the not-run marker gives no reason")
        elif block.language not in PYTHON_LANGUAGES and block.not_run_reason is None:
            kind = block.language or "unlabelled"
            problems.append(
                f"{where}: a {kind} block needs a '<!-- not-run: <reason> -->' line before it"
            )
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("page", pages(), ids=page_id)
def test_every_not_run_marker_stands_before_a_block(page: Path) -> None:
    lines = page.read_text(encoding="utf-8").splitlines()
    marked = {block.line - 1 for block in fenced_blocks(page) if block.not_run_reason}
    dangling = []
    for number, line in enumerate(lines, start=1):
        if _NOT_RUN.match(line):
            following = next(
                (n for n in range(number + 1, len(lines) + 1) if lines[n - 1].strip()), None
            )
            if following not in marked:
                dangling.append(f"{page_id(page)}:{number}")
    assert not dangling, f"not-run markers with no fenced block right after them: {dangling}"


def test_the_block_parser_reads_markers_languages_and_indented_fences(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "# Title\n\n"
        "```python\nx = 1\n```\n\n"
        "<!-- not-run: needs a server -->\n\n"
        "```bash\ncurl localhost\n```\n\n"
        '!!! note\n    ```py title="inner.py"\n    y = x + 1\n    ```\n\n'
        "~~~~\nplain\n~~~~\n",
        encoding="utf-8",
    )
    blocks = [
        (b.line, b.language, b.source, b.not_run_reason) for b in fenced_blocks(page, root=tmp_path)
    ]
    assert blocks == [
        (4, "python", "x = 1\n", None),
        (10, "bash", "curl localhost\n", "needs a server"),
        (15, "py", "y = x + 1\n", None),
        (19, "", "plain\n", None),
    ]


def test_a_failing_block_reports_the_page_and_line(tmp_path: Path) -> None:
    blocks = [
        Block("docs/pages/x.md", 3, "python", "value = 1\n", None),
        Block("docs/pages/x.md", 9, "python", "assert value == 2\n", None),
    ]
    result = run_blocks(blocks, cwd=tmp_path)
    assert result.returncode != 0
    assert 'File "docs/pages/x.md", line 9' in result.stderr


def test_blocks_run_as_written_with_no_hidden_future_import(tmp_path: Path) -> None:
    # Under `from __future__ import annotations` the annotation would stay the
    # string "int"; evaluated, as in a reader's copy without that line, it is int.
    source = "def f() -> int: ...\nassert f.__annotations__['return'] is int\n"
    result = run_blocks([Block("docs/pages/x.md", 1, "python", source, None)], cwd=tmp_path)
    assert result.returncode == 0, result.stderr


def test_every_public_module_has_a_reference_page() -> None:
    documented = {
        match["module"]
        for page in REFERENCE.rglob("*.md")
        for match in _DIRECTIVE.finditer(page.read_text(encoding="utf-8"))
    }
    missing = sorted(set(_api_coverage().public_names(ROOT / "src")) - documented)
    assert not missing, f"no '::: module' page under docs/pages/reference/ for: {missing}"


def _api_coverage() -> ModuleType:
    """Import the MkDocs hook that holds the public-name check (it is not a package)."""
    path = DOCS / "hooks" / "api_coverage.py"
    spec = importlib.util.spec_from_file_location("_docs_api_coverage", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_reexported_name_counts_as_documented_only_where_its_module_documents_it() -> None:
    coverage = _api_coverage()
    expected = {"pkg": ["thing"], "pkg.mod": ["thing"]}
    homes = {"pkg.thing": "pkg.mod.thing"}
    documented = {"pkg", "pkg.mod", "pkg.mod.thing"}
    assert coverage.missing_names(expected, documented, homes) == []
    assert coverage.missing_names(expected, documented - {"pkg.mod.thing"}, homes) == [
        "pkg.thing",
        "pkg.mod.thing",
    ]


def test_the_package_index_links_every_name_to_the_module_that_defines_it() -> None:
    coverage = _api_coverage()
    homes = coverage.reexport_homes(coverage.public_names(ROOT / "src"))
    assert homes["tracectrl.session_scope"] == "tracectrl.scope.session_scope"
    assert homes["tracectrl.new_session"] == "tracectrl.session.new_session"


def _load_script(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_performance_page_and_chart_show_the_committed_benchmark_results() -> None:
    benchmarks = _load_script(ROOT / "tests" / "benchmarks" / "run.py", "_benchmarks_run")
    chart = _load_script(DOCS / "scripts" / "benchmark_chart.py", "_benchmark_chart")
    summary = json.loads(benchmarks.RESULTS.read_text(encoding="utf-8"))
    page = benchmarks.PERFORMANCE_PAGE.read_text(encoding="utf-8")
    stale = "run `python tests/benchmarks/run.py --write-docs` (or redraw from results.json)"
    for line in [*benchmarks.docs_table_lines(summary), *benchmarks.targets_lines(summary)]:
        assert line in page, f"performance.md does not show {line!r}: {stale}"
    assert chart.CHART.read_text(encoding="utf-8") == chart.svg(summary), f"stale chart: {stale}"


def test_home_states_the_measured_cost_of_a_scope() -> None:
    summary = json.loads((ROOT / "tests" / "benchmarks" / "results.json").read_text("utf-8"))
    ratios = {
        result["compared_with"]: result["ratio"]
        for result in summary["results"]
        if result["operation"].startswith("`with session_scope(id)`")
    }
    home = " ".join((PAGES / "index.md").read_text(encoding="utf-8").split())
    claim = f"{ratios['minimal class manager']:.2f}\N{MULTIPLICATION SIGN} a minimal hand-written"
    assert claim in home, f"Home should say {claim!r}, as the benchmarks measured"
    versus_openinference = (
        f"{ratios['OpenInference using_session']:.2f}\N{MULTIPLICATION SIGN} "
        "OpenInference's `using_session`"
    )
    assert versus_openinference in home, f"Home should say {versus_openinference!r}"
