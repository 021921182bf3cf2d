"""Render the built book's pages in headless Chromium, offline, and check what a reader sees.

    .venv/bin/python scripts/screenshot_book.py [--out _build/screenshots] [--page explorer ...]

For each page of ``_build/html/book`` (or the ``--page`` names): a full-page PNG screenshot,
however tall the page (the browser is asked for the whole document, not one window); the
checks of :func:`siautil.offline.check` (no script or stylesheet from the internet, every image
there, no widget view, MathJax of the book's own); and, from the page as the browser drew it,
that its math is typeset: MathJax's ``<mjx-container>`` elements present and no math element
still showing raw TeX. The browser has no network (``--proxy-server`` to nowhere): a page that
needs the internet shows it. Needs Debian's ``chromium`` (``apt-get install chromium``); writes
``report.json`` beside the screenshots and exits 1 on any problem.

It drives Chromium through the DevTools protocol over a pipe (``--remote-debugging-pipe``:
file descriptors 3 and 4), so it needs nothing beyond the standard library and the browser.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from siautil import offline  # noqa: E402

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--hide-scrollbars",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         # offline: every request to the network goes to a proxy that is not there
         "--proxy-server=http://127.0.0.1:9", "--proxy-bypass-list=<-loopback>"]
WIDTH = 1280
#: Seconds a page gets to load and typeset its math.
SETTLE = 20.0


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    sys.exit("headless Chromium not found: apt-get install chromium")


class Browser:
    """One headless Chromium, spoken to in the DevTools protocol over its pipe."""

    def __init__(self, executable: str, profile: str):
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()

        def pipes() -> None:  # in the child: the protocol's descriptors 3 (in) and 4 (out)
            into, out = os.dup(to_browser_r), os.dup(from_browser_w)  # neither is 3 or 4 now
            os.dup2(into, 3)
            os.dup2(out, 4)

        self.proc = subprocess.Popen([executable, *FLAGS, f"--user-data-dir={profile}", "--remote-debugging-pipe",
                                      "about:blank"], preexec_fn=pipes, close_fds=False,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._buffer, self._next = b"", 0

    def call(self, method: str, session: str | None = None, **params):
        self._next += 1
        message = {"id": self._next, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        while True:
            while b"\0" not in self._buffer:
                chunk = os.read(self._from_browser, 1 << 20)
                if not chunk:
                    raise RuntimeError("Chromium closed its pipe")
                self._buffer += chunk
            raw, self._buffer = self._buffer.split(b"\0", 1)
            reply = json.loads(raw)
            if reply.get("id") == self._next:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})

    def close(self) -> None:
        try:
            self.call("Browser.close")
        except (RuntimeError, OSError):
            pass
        self.proc.wait(timeout=30)


def render(browser: Browser, page: Path, png: Path) -> dict:
    """Open ``page``, wait for it to settle, save a full-page screenshot; return what the DOM
    says of its math."""
    target = browser.call("Target.createTarget", url="about:blank")["targetId"]
    session = browser.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
    browser.call("Page.enable", session)
    browser.call("Runtime.enable", session)
    browser.call("Emulation.setDeviceMetricsOverride", session, width=WIDTH, height=900, deviceScaleFactor=1,
                 mobile=False)
    browser.call("Page.navigate", session, url=page.as_uri())
    math = {}
    deadline = time.monotonic() + SETTLE
    while time.monotonic() < deadline:
        time.sleep(0.5)
        math = browser.call("Runtime.evaluate", session, returnByValue=True, expression="""(() => {
            const raw = [...document.querySelectorAll('.math')].filter(
                e => !e.querySelector('mjx-container') && /\\\\[(\\[]/.test(e.textContent)).length;
            return {ready: document.readyState, math: document.querySelectorAll('.math').length,
                    typeset: document.querySelectorAll('mjx-container').length, raw: raw};
        })()""")["result"]["value"]
        if math["ready"] == "complete" and (math["math"] == 0 or math["raw"] == 0):
            break
    height = browser.call("Runtime.evaluate", session, returnByValue=True,
                          expression="Math.ceil(document.documentElement.scrollHeight)")["result"]["value"]
    browser.call("Emulation.setDeviceMetricsOverride", session, width=WIDTH, height=int(height),
                  deviceScaleFactor=1, mobile=False)
    time.sleep(0.5)
    # the window is as tall as the page, so a plain capture takes it whole; a clip with
    # captureBeyondViewport drew the page shifted left, the primary sidebar cut off
    shot = browser.call("Page.captureScreenshot", session, format="png")
    png.write_bytes(base64.b64decode(shot["data"]))
    browser.call("Target.closeTarget", targetId=target)
    return dict(math=math.get("math", 0), typeset=math.get("typeset", 0), raw=math.get("raw", 0), height=int(height))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(ROOT / "_build" / "screenshots"))
    ap.add_argument("--html", default=str(ROOT / "_build" / "html"), help="the built book")
    ap.add_argument("--page", action="append", help="only this page of book/ (repeatable), e.g. explorer")
    args = ap.parse_args()
    out, html = Path(args.out), Path(args.html)
    out.mkdir(parents=True, exist_ok=True)
    pages = sorted((html / "book").glob("*.html"))
    if args.page:
        pages = [p for p in pages if p.stem in args.page]
    if not pages:
        sys.exit("no built pages: run `make book` first")
    failures, report = [], {}
    with tempfile.TemporaryDirectory() as profile:
        browser = Browser(chromium(), profile)
        try:
            for page in pages:
                png = out / f"{page.stem}.png"
                problems = offline.page_problems(page)
                math = render(browser, page, png)
                if math["math"] and (math["typeset"] == 0 or math["raw"]):
                    problems.append(f"math not typeset: {math['raw']} of {math['math']} elements still raw TeX")
                ok = png.stat().st_size > 10_000 and not problems
                report[page.stem] = dict(screenshot=str(png), problems=problems, **math)
                print(f"{page.stem:12s} {math['height']:6d} px  math {math['math']:3d} typeset {math['typeset']:3d} "
                      f"raw {math['raw']:3d}  {'ok' if ok else 'FAILED: ' + '; '.join(problems)}", flush=True)
                if not ok:
                    failures.append(page.stem)
        finally:
            browser.close()
    (out / "report.json").write_text(json.dumps(report, indent=2))
    if failures:
        print(f"problems on: {', '.join(failures)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
