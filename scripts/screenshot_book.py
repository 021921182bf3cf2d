"""Render every chapter of the built book in headless Chromium and check what a reader sees.

    .venv/bin/python scripts/screenshot_book.py [--out _build/screenshots]

For each page of ``_build/html/book``: a full-page PNG screenshot, and a check that every
``<img>`` on the page loaded (non-zero natural width) and that chapters with figures have
them. Needs Debian's ``chromium`` (``apt-get install chromium``); exits 1 on a missing image.
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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default=str(ROOT / "_build" / "screenshots"))
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    pages = sorted((ROOT / "_build" / "html" / "book").glob("*.html"))
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
        ok = png.exists() and png.stat().st_size > 10_000 and not missing
        report[page.stem] = dict(images=n_images, missing=missing, screenshot=str(png) if png.exists() else None)
        print(f"{page.stem:12s} images {n_images:3d}  missing {len(missing)}  screenshot {'ok' if ok else 'FAILED'}")
        if not ok:
            failures.append(page.stem)
    (out / "report.json").write_text(json.dumps(report, indent=2))
    if failures:
        print(f"problems on: {', '.join(failures)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
