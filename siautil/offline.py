"""Whether the built book reads offline: a check of its HTML alone, without a browser.

:func:`check` reads every page of ``_build/html`` and names each thing a reader without a
connection would miss: a script or stylesheet from the internet (widgets' managers and
RequireJS come from CDNs), a local script, stylesheet or image that is not in the build, a
widget view (it shows nothing without its JavaScript), and math on a page without MathJax from
the build itself (``sphinx-mathjax-offline`` puts it in ``_static/mathjax``). ``siautil book``
runs it after every HTML build, and the build fails when it finds anything;
``scripts/screenshot_book.py`` adds what only a browser shows (the math typeset, the page as
drawn).
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

#: The output type of a widget in an executed notebook, as myst-nb writes it into a page.
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
#: Folders of the build that hold assets, not pages.
ASSET_DIRS = ("_static", "_sources", "_images", "_sphinx_design_static")


def pages(html: Path) -> list[Path]:
    """The built book's pages (assets' folders left out)."""
    return sorted(p for p in Path(html).rglob("*.html")
                  if not set(p.relative_to(html).parts[:-1]) & set(ASSET_DIRS))


def _remote(url: str) -> bool:
    return url.startswith("//") or urlsplit(url).scheme in ("http", "https")


def _missing(page: Path, url: str) -> bool:
    """Whether the local file ``url`` (relative to ``page``) is absent from the build."""
    parts = urlsplit(url)
    if parts.scheme or not parts.path:  # data:, mailto:, an anchor on the page
        return False
    return not (page.parent / unquote(parts.path)).resolve().exists()


def page_problems(page: Path) -> list[str]:
    """What a reader without a connection would miss on ``page``, one line each."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(page.read_text(encoding="utf-8"), "html.parser")
    out = []
    for tag, attr, what in (("script", "src", "script"), ("link", "href", "stylesheet"), ("img", "src", "image")):
        for node in soup.find_all(tag):
            url = node.get(attr)
            if not url or (tag == "link" and "stylesheet" not in (node.get("rel") or [])):
                continue
            if _remote(url):
                out.append(f"loads a {what} from the internet: {url}")
            elif _missing(page, url):
                out.append(f"its {what} {url} is not in the build")
    if soup.find("script", type=WIDGET_VIEW):
        out.append("holds a widget view, blank without its JavaScript (an executed chapter kept a widget: show "
                   "progress as text, and interactive views only where a notebook runs live)")
    if soup.select(".math"):
        mathjax = [s["src"] for s in soup.find_all("script", src=True) if "mathjax" in s["src"].lower()]
        if not any(not _remote(src) and not _missing(page, src) for src in mathjax):
            out.append("has math but no MathJax of the build's own to typeset it")
    return out


def check(html: Path) -> list[str]:
    """Every problem of every page of the built book ``html``, as ``page: problem``; none when it
    reads offline. A build without pages is a problem of its own."""
    html = Path(html)
    found = pages(html) if html.is_dir() else []
    if not found:
        return [f"{html}: no built pages (run `siautil book`)"]
    return [f"{page.relative_to(html)}: {problem}" for page in found for problem in page_problems(page)]
