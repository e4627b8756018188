"""MkDocs hook: the version in the header, and the standard-library inventory read offline.

* The site name becomes ``tracectrl <version>``, the version read from
  ``src/tracectrl/__init__.py`` (so every page shows which release it documents).
* ``mkdocs.yml`` lists the committed ``python-stdlib.inv`` by its file name;
  mkdocstrings opens inventories as URLs, so this hook turns that name into a
  ``file://`` URL before mkdocstrings reads its configuration (hence the high
  priority).  The build never fetches anything from the network.
* Mermaid ships with the site, so diagrams render offline: the committed
  ``docs/vendor/mermaid.min.js.gz`` is unpacked into the built site as
  ``javascripts/mermaid.min.js`` (``mkdocs.yml`` lists it in ``extra_javascript``;
  Material loads Mermaid from a CDN only when the page has not loaded it).
  ``docs/scripts/vendor_mermaid.sh`` refreshes it from the npm registry.
* Links to a page that another branch adds (listed in ``PENDING_PAGES``) point
  to a stand-in page until that page exists, so the strict build passes before
  and after the merge.  Empty the list once the pages are merged.
"""

from __future__ import annotations

import gzip
import hashlib
import re
from pathlib import Path
from typing import Any

from mkdocs.plugins import event_priority

# page that another branch adds -> the page its links point to until then
PENDING_PAGES: dict[str, str] = {}

_VERSION = re.compile(r'^__version__\s*=\s*"(?P<version>[^"]+)"', re.MULTILINE)


@event_priority(100)
def on_config(config: Any) -> None:
    docs = Path(config["config_file_path"]).parent
    init = (docs.parent / "src" / "tracectrl" / "__init__.py").read_text(encoding="utf-8")
    match = _VERSION.search(init)
    if match is not None:
        config["site_name"] = f"tracectrl {match['version']}"
    python = config["plugins"]["mkdocstrings"].config["handlers"]["python"]
    for inventory in python.get("inventories", []):
        if isinstance(inventory, dict) and "://" not in inventory["url"]:
            path = (docs / inventory["url"]).resolve()
            # MkDocs caches what it downloads for a day, by URL; the fragment (which
            # urllib drops) names this version of the file, so a new one is read.
            version = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
            inventory["url"] = f"{path.as_uri()}#{version}"


def on_page_markdown(markdown: str, page: Any, config: Any, **kwargs: Any) -> str:
    for pending, stand_in in PENDING_PAGES.items():
        if not (Path(config["docs_dir"]) / pending).exists():
            markdown = markdown.replace(f"]({pending}", f"]({stand_in}")
    return markdown


def on_post_build(config: Any) -> None:
    packed = Path(config["config_file_path"]).parent / "vendor" / "mermaid.min.js.gz"
    target = Path(config["site_dir"]) / "javascripts" / "mermaid.min.js"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(gzip.decompress(packed.read_bytes()))
