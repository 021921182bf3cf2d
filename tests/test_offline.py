"""The offline check of the built book (siautil.offline): every page read for what a reader without
a connection would miss. The build runs it (`siautil book`); here it reads pages made to fail."""

from pathlib import Path

import pytest

from siautil import offline

ROOT = Path(__file__).resolve().parents[1]

GOOD = """<html><head><script src="../_static/mathjax/tex-chtml.js"></script>
<link rel="stylesheet" href="../_static/style.css?v=1"><link rel="canonical" href="https://example.org/x">
</head><body><span class="math">\\(x\\)</span><img src="../_images/fig.png"><a href="https://example.org">a link</a>
</body></html>"""


@pytest.fixture
def book(tmp_path):
    for rel in ("_static/mathjax/tex-chtml.js", "_static/style.css", "_images/fig.png"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("x")
    (tmp_path / "book").mkdir()
    (tmp_path / "book" / "good.html").write_text(GOOD)
    (tmp_path / "_static" / "ignored.html").write_text('<script src="https://cdn.example/x.js"></script>')
    return tmp_path


def test_a_page_with_everything_in_the_build_reads_offline(book):
    assert offline.check(book) == []


@pytest.mark.parametrize("change, problem", [
    ('<script src="https://cdn.jsdelivr.net/npm/require.min.js"></script>',
     "loads a script from the internet: https://cdn.jsdelivr.net/npm/require.min.js"),
    ('<link rel="stylesheet" href="//fonts.example/f.css">', "loads a stylesheet from the internet: //fonts.example/f.css"),
    ('<img src="../_images/gone.png">', "its image ../_images/gone.png is not in the build"),
    ('<script src="../_static/missing.js"></script>', "its script ../_static/missing.js is not in the build"),
    ('<script type="application/vnd.jupyter.widget-view+json">{"model_id": "1"}</script>', "holds a widget view"),
])
def test_what_a_reader_offline_would_miss_is_named_with_its_page(book, change, problem):
    (book / "book" / "bad.html").write_text(GOOD.replace("</body>", change + "</body>"))
    found = offline.check(book)
    assert len(found) == 1 and found[0].startswith("book/bad.html: ") and problem in found[0], found


def test_math_needs_the_build_s_own_mathjax(book):
    page = GOOD.replace('<script src="../_static/mathjax/tex-chtml.js"></script>',
                        '<script src="https://cdn.example/mathjax/tex-chtml.js"></script>')
    (book / "book" / "bad.html").write_text(page)
    found = offline.check(book)
    assert any("no MathJax of the build's own" in f for f in found) and any("from the internet" in f for f in found)


def test_a_missing_build_is_a_problem(tmp_path):
    assert offline.check(tmp_path / "nothing") == [f"{tmp_path / 'nothing'}: no built pages (run `siautil book`)"]


@pytest.mark.skipif(not (ROOT / "_build" / "html" / "book").is_dir(), reason="the book has not been built here")
def test_the_book_built_here_reads_offline():
    assert offline.check(ROOT / "_build" / "html") == []
