"""MkDocs hook: the API reference must show every public name, and Sphinx roles become links.

A public module is any module of ``tracectrl`` with no ``_``-prefixed part in its
dotted path.  After the build, each one and every name in its ``__all__`` must
be an anchor (``id="tracectrl.session.new_session"``) on a page under
``reference/``; each one that is not is logged as a warning, which fails
``mkdocs build --strict`` (the check command runs that build).  A name the
package re-exports counts as documented where its defining module documents it,
so the package's own page can be a short index with no duplicates.  ``tests/test_docs.py``
imports :func:`public_names` to check that every public module has a reference page.

Docstrings are written with Sphinx roles (``:func:`tracectrl.session_scope```),
which Markdown renders literally; :func:`on_page_content` turns them into
optional cross-references, linked where the reference has the name and plain
code where it does not (the standard library, unqualified names), and drops
the second colon of reST's ``text::`` before a literal block.
"""

from __future__ import annotations

import importlib
import logging
import pkgutil
import re
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

PACKAGE = "tracectrl"
REFERENCE_DIR = "reference/"

# A child of the "mkdocs" logger, so that --strict counts its warnings.
log = logging.getLogger("mkdocs.hooks.api_coverage")

_ANCHOR = re.compile(r'\bid="([^"]+)"')
_SPHINX_ROLE = re.compile(
    r":(?:py:)?(?:func|class|meth|mod|data|exc|attr|obj):<code>(?P<short>~?)(?P<target>[\w.]+)"
    r"(?P<call>\(\))?</code>"
)
# reST's "text::" before a literal block; Markdown keeps both colons.
_LITERAL_BLOCK_COLONS = re.compile(r"(?<=\S)::</p>")
_rendered_anchors: set[str] = set()


def public_names(src: Path | None = None) -> dict[str, list[str]]:
    """Map every public module of the package to the names it must document.

    The names are the module's ``__all__``.  A package with no ``__all__`` (a
    namespace such as ``tracectrl.integrations``) documents nothing itself; a
    plain module with no ``__all__`` is a mistake and maps to ``["__all__"]``, a
    name the reference never renders, so that the check reports it.
    """
    if src is not None and str(src) not in sys.path:
        sys.path.insert(0, str(src))
    package = importlib.import_module(PACKAGE)
    modules = [PACKAGE] + [
        info.name
        for info in pkgutil.walk_packages(package.__path__, prefix=f"{PACKAGE}.")
        if not any(part.startswith("_") for part in info.name.split("."))
    ]
    names: dict[str, list[str]] = {}
    for module_name in modules:
        module = importlib.import_module(module_name)
        exported = getattr(module, "__all__", None)
        if exported is None:
            if hasattr(module, "__path__"):
                continue
            exported = ["__all__"]
        names[module_name] = sorted(exported)
    return names


def missing_names(
    expected: Mapping[str, Iterable[str]],
    anchors: set[str],
    homes: Mapping[str, str] | None = None,
) -> list[str]:
    """Return the public modules and names that have no anchor in ``anchors``.

    ``homes`` maps a re-exported name (``tracectrl.session_scope``) to the path
    where it is documented (``tracectrl.scope.session_scope``): the package's
    index page links there instead of rendering every name a second time.
    """
    homes = homes or {}
    missing = []
    for module_name, exported in expected.items():
        for path in (module_name, *(f"{module_name}.{name}" for name in exported)):
            if path not in anchors and homes.get(path) not in anchors:
                missing.append(path)
    return missing


def reexport_homes(expected: Mapping[str, Iterable[str]]) -> dict[str, str]:
    """Map each name a module re-exports to its path in the public module that defines it."""
    homes = {}
    for module_name, exported in expected.items():
        module = importlib.import_module(module_name)
        for name in exported:
            value = getattr(module, name, None)
            for other_name, other_exported in expected.items():
                other = importlib.import_module(other_name)
                if (
                    other_name != module_name
                    and name in other_exported
                    and getattr(other, name, None) is value
                ):
                    homes[f"{module_name}.{name}"] = f"{other_name}.{name}"
                    break
    return homes


def anchors_in(html: str) -> set[str]:
    """Return every ``id`` attribute value in ``html``."""
    return set(_ANCHOR.findall(html))


def on_config(config: Any) -> None:
    _rendered_anchors.clear()


def on_page_content(html: str, page: Any, **kwargs: Any) -> str:
    html = _SPHINX_ROLE.sub(_optional_autoref, html)
    html = _LITERAL_BLOCK_COLONS.sub(":</p>", html)
    if page.file.src_uri.startswith(REFERENCE_DIR):
        _rendered_anchors.update(anchors_in(html))
    return html


def on_post_build(config: Any) -> None:
    src = Path(config["config_file_path"]).parent.parent / "src"
    try:
        expected = public_names(src)
    except ImportError as error:
        log.warning("api_coverage: cannot import a public module: %s", error)
        return
    missing = missing_names(expected, _rendered_anchors, reexport_homes(expected))
    for path in missing:
        module_name, _, name = path.rpartition(".")
        if path in expected:
            log.warning(
                "api_coverage: public module %s has no API reference: add a page with "
                "'::: %s' under docs/pages/%s",
                path,
                path,
                REFERENCE_DIR,
            )
        elif name == "__all__":
            log.warning("api_coverage: public module %s defines no __all__", module_name)
        elif module_name not in missing:
            log.warning("api_coverage: %s is in __all__ but not in the API reference", path)


def _optional_autoref(match: re.Match[str]) -> str:
    target = match["target"]
    title = target.rsplit(".", 1)[-1] if match["short"] else target
    title += match["call"] or ""
    return f'<autoref identifier="{target}" optional><code>{title}</code></autoref>'
