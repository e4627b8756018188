"""Build the docs, serve them on 127.0.0.1, screenshot key pages, and fail on any sideways scroll.

Run from the repository root (the check command does, after the strict build)::

    python docs/scripts/screenshots.py [--out DIR] [--chromium PATH]

For Home, the Quickstart and Performance, at 1400 px and at 390 px wide, it
takes a PNG with headless Chromium and measures the rendered page in the same
browser.  It fails (exit status 1) when

* the page is wider than the window (something is cut off or scrolls the
  whole page sideways), at either width; or
* at 1400 px, a code block or a table is wider than its box, so that its end
  is hidden behind a scroll bar.

At 390 px, code blocks of up to 88 columns scroll inside their box, as on any
phone; those are listed but do not fail.
"""

from __future__ import annotations

import argparse
import functools
import html
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PAGES = {"home": "", "quickstart": "quickstart/", "performance": "performance/"}
WIDTHS = {"desktop": 1400, "phone": 390}
HEIGHT = 2400
MARKER = "tracectrl-layout"

# Added to every HTML page the server sends: once the page (and its diagrams)
# has rendered, it writes what overflows into a <pre id=...> that --dump-dom prints.
_PROBE = """<script>
window.addEventListener("load", () => setTimeout(() => {
  const wide = (el) => el.scrollWidth > el.clientWidth + 1;
  const name = (el) => el.tagName.toLowerCase() + ": " + el.textContent.trim().slice(0, 60);
  const report = JSON.stringify({
    viewport: window.innerWidth,
    page: document.documentElement.scrollWidth,
    code: [...document.querySelectorAll(".md-content pre > code")].filter(wide).map(name),
    tables: [...document.querySelectorAll(".md-typeset__table, .md-typeset table")]
      .filter(wide).map(name),
  });
  if (window.parent !== window) window.parent.postMessage(report, "*");
}, 1500));
</script>"""

# Chromium's headless window is at least 500 px wide, so a phone-width page is
# loaded in an iframe of exactly that width; the frame reports its layout here.
_FRAME = """<!doctype html><html><body style="margin:0">
<iframe src="%(src)s" style="width:%(width)dpx;height:%(height)dpx;border:0"></iframe>
<script>
window.addEventListener("message", (event) => {
  const pre = document.createElement("pre");
  pre.id = "%(marker)s";
  pre.textContent = event.data;
  document.body.appendChild(pre);
});
</script></body></html>"""


class _ProbingHandler(SimpleHTTPRequestHandler):
    """Serve the built site, with the layout probe added to each HTML page."""

    def end_headers(self) -> None:
        self.send_header("Cache-Control", "no-store")
        super().end_headers()

    def send_head(self):  # type: ignore[no-untyped-def]
        frame = re.fullmatch(r"/__frame/(?P<width>\d+)/(?P<src>.*)", self.path)
        if frame is not None:
            width, src = int(frame["width"]), "/" + frame["src"]
            page = {"src": src, "width": width, "height": HEIGHT, "marker": MARKER}
            return self._send_html(_FRAME % page)
        path = Path(self.translate_path(self.path))
        if path.is_dir():
            path = path / "index.html"
        if path.suffix != ".html" or not path.is_file():
            return super().send_head()
        body = path.read_text(encoding="utf-8").replace("</body>", _PROBE + "</body>")
        return self._send_html(body)

    def _send_html(self, body: str) -> io.BytesIO:
        data = body.encode("utf-8")
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        return io.BytesIO(data)

    def log_message(self, format: str, *args: object) -> None:
        pass


def build(site: Path) -> None:
    mkdocs = Path(sys.executable).with_name("mkdocs")
    command = [str(mkdocs) if mkdocs.exists() else "mkdocs", "build", "--strict", "--quiet"]
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    subprocess.run(
        [*command, "--config-file", str(ROOT / "docs" / "mkdocs.yml"), "--site-dir", str(site)],
        check=True,
        env=env,
    )


def chromium(binary: str, width: int, *arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            binary,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--no-first-run",
            f"--window-size={width},{HEIGHT}",
            "--virtual-time-budget=6000",
            *arguments,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def measure(binary: str, frame_url: str, window: int) -> dict[str, object]:
    result = chromium(binary, window, "--dump-dom", frame_url)
    found = re.search(rf'<pre id="{MARKER}">(.*?)</pre>', result.stdout, re.DOTALL)
    if found is None:
        raise RuntimeError(f"no layout report from {frame_url}:\n{result.stderr[-2000:]}")
    report: dict[str, object] = json.loads(html.unescape(found.group(1)))
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--out", type=Path, default=ROOT / ".screenshots")
    parser.add_argument("--chromium", default=shutil.which("chromium") or "chromium")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    problems = []
    with tempfile.TemporaryDirectory() as site_dir:
        site = Path(site_dir)
        build(site)
        handler = functools.partial(_ProbingHandler, directory=str(site))
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            base = f"http://127.0.0.1:{server.server_port}/"
            for page, path in PAGES.items():
                for device, width in WIDTHS.items():
                    url = f"{base}__frame/{width}/{path}"
                    window = max(width, 500)
                    png = args.out / f"{page}-{width}.png"
                    png.unlink(missing_ok=True)
                    shot = chromium(args.chromium, window, f"--screenshot={png}", url)
                    if not png.exists():
                        raise RuntimeError(f"no screenshot of {url}:\n{shot.stderr[-2000:]}")
                    report = measure(args.chromium, url, window)
                    where = f"{page} at {width} px"
                    if int(str(report["page"])) > int(str(report["viewport"])):
                        problems.append(
                            f"{where}: the page is {report['page']} px wide, "
                            f"wider than the {report['viewport']} px window"
                        )
                    overflowing = [*report["code"], *report["tables"]]  # type: ignore[misc]
                    if overflowing and device == "desktop":
                        problems.extend(f"{where}: scrolls sideways: {e}" for e in overflowing)
                    elif overflowing:
                        print(f"{where}: {len(overflowing)} block(s) scroll inside their box")
                    print(f"{where}: page {report['page']} px, screenshot {png}")
        finally:
            server.shutdown()
            server.server_close()
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
