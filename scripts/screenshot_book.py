"""Render every chapter of the built book in headless Chromium and check what a reader sees.

    .venv/bin/python scripts/screenshot_book.py [--out _build/screenshots]

For each page of ``_build/html/book``: a full-page PNG screenshot; a check that every
``<img>`` on the page exists; a check that the page loads no script from the internet (the
book must read offline); and a check that its math is typeset: the DOM after the page's
scripts ran (``--dump-dom``) must hold MathJax's ``<mjx-container>`` elements and no math
element still showing raw TeX (``\\(``, ``\\[``). Needs Debian's ``chromium``
(``apt-get install chromium``); exits 1 on any of these problems.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars"]


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    sys.exit("headless Chromium not found: apt-get install chromium")


def check_images(html: Path) -> list[str]:
    """Image sources on the page that do not exist on disk (what a browser would show broken)."""
    text = html.read_text()
    missing = []
    for src in re.findall(r'<img[^>]+src="([^"]+)"', text):
        if src.startswith(("http", "data:")):
            continue
        if not (html.parent / src).resolve().exists():
            missing.append(src)
    return missing


def remote_scripts(html: Path) -> list[str]:
    """Scripts the page loads from the internet: without a connection they never arrive."""
    return re.findall(r'<script[^>]+src="((?:https?:)?//[^"]+)"', html.read_text())


#: A math element whose content is still the TeX source: MathJax replaces it when it typesets.
#: (A numbered equation has its number first: ``<span class="eqno">(1)<a ...>#</a></span>``.)
RAW_MATH = re.compile(r'<(?:span|div) class="math[^"]*"[^>]*>\s*(?:<span class="eqno">.*?</span>)?\s*\\[(\[]')


def check_math(browser: str, html: Path) -> dict:
    """Typeset and raw math elements in the page's DOM once its scripts have run."""
    n_math = len(re.findall(r'class="math[ "]', html.read_text()))
    if not n_math:
        return dict(math=0, typeset=0, raw=0)
    with tempfile.TemporaryDirectory() as profile:
        dom = subprocess.run([browser, *FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=20000",
                              "--dump-dom", html.as_uri()], capture_output=True, text=True, timeout=120).stdout
    return dict(math=n_math, typeset=dom.count("<mjx-container"), raw=len(RAW_MATH.findall(dom)))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default=str(ROOT / "_build" / "screenshots"))
    ap.add_argument("--html", default=str(ROOT / "_build" / "html"), help="the built book")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    pages = sorted((Path(args.html) / "book").glob("*.html"))
    if not pages:
        sys.exit("no built book: run `make book` first")
    browser, failures, report = chromium(), [], {}
    for page in pages:
        missing = check_images(page)
        n_images = len(re.findall(r"<img", page.read_text()))
        png = out / f"{page.stem}.png"
        with tempfile.TemporaryDirectory() as profile:
            subprocess.run([browser, *FLAGS, f"--user-data-dir={profile}", "--window-size=1280,2400",
                            f"--screenshot={png}", page.as_uri()], capture_output=True, timeout=120)
        remote = remote_scripts(page)
        math = check_math(browser, page)
        math_ok = math["math"] == 0 or (math["typeset"] > 0 and math["raw"] == 0)
        ok = png.exists() and png.stat().st_size > 10_000 and not missing and not remote and math_ok
        report[page.stem] = dict(images=n_images, missing=missing, remote_scripts=remote, **math,
                                 screenshot=str(png) if png.exists() else None)
        print(f"{page.stem:12s} images {n_images:3d}  missing {len(missing)}  remote scripts {len(remote)}  "
              f"math {math['math']:3d} typeset {math['typeset']:3d} raw {math['raw']:3d}  "
              f"{'ok' if ok else 'FAILED'}")
        if not ok:
            failures.append(page.stem)
    (out / "report.json").write_text(json.dumps(report, indent=2))
    if failures:
        print(f"problems on: {', '.join(failures)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
