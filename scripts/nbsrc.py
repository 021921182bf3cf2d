"""Write a chapter notebook from a compact Python description (used to author notebooks/).

    python scripts/nbsrc.py notebooks/src/*.py            writes notebooks/<name>.ipynb
    python scripts/nbsrc.py --check notebooks/src/*.py    fails if a notebook is stale

The description is a Python file whose cells are separated by ``# %%`` lines (the
"percent" format Jupyter, VS Code and jupytext read); ``# %% [markdown]`` cells hold
markdown in a comment block, ``# %% tags=["parameters"]`` marks the parameters cell.
"""

import json
import re
import sys
from pathlib import Path

#: Prepended to every chapter: in Colab (opened from the book's launch button) it installs
#: siautil with its book extra; anywhere else it does nothing. Hidden in the built book.
SETUP_CELL = """\
# Colab: install siautil on first run (does nothing elsewhere)
import importlib.util, subprocess, sys
if "google.colab" in sys.modules and importlib.util.find_spec("siautil") is None:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", REPO], check=True)"""
REPO = '"siautil[book] @ git+https://github.com/siautil/sia-book"'

HEADER = re.compile(r"^# %%(?P<md> \[markdown\])?(?: tags=(?P<tags>\[.*\]))?\s*$")


def convert(src: Path) -> dict:
    cells, cur = [], None
    for line in src.read_text().splitlines():
        m = HEADER.match(line)
        if m:
            cur = {"md": bool(m["md"]), "tags": json.loads(m["tags"]) if m["tags"] else [], "lines": []}
            cells.append(cur)
        elif cur is not None:
            cur["lines"].append(line[2:] if cur["md"] and line.startswith("# ") else
                                ("" if cur["md"] and line == "#" else line))
    out = [{"cell_type": "code", "metadata": {"tags": ["remove-cell", "colab-setup"]},
            "source": SETUP_CELL.replace("REPO", REPO), "execution_count": None, "outputs": []}]
    for c in cells:
        text = "\n".join(c["lines"]).strip("\n")
        cell = {"cell_type": "markdown" if c["md"] else "code", "metadata": {}, "source": text}
        if c["tags"]:
            cell["metadata"]["tags"] = c["tags"]
        if not c["md"]:
            cell.update(execution_count=None, outputs=[])
        out.append(cell)
    return {
        "cells": out,
        "metadata": {
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
            "language_info": {"name": "python"},
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def render(src: Path) -> str:
    nb = convert(src)
    for i, cell in enumerate(nb["cells"]):
        cell["id"] = f"{src.stem}-{i}"
    return json.dumps(nb, indent=1, ensure_ascii=False) + "\n"


def target(src: Path) -> Path:
    return src.parent.parent / f"{src.stem}.ipynb"


if __name__ == "__main__":
    check = "--check" in sys.argv
    stale = []
    for arg in (a for a in sys.argv[1:] if a != "--check"):
        src = Path(arg)
        text, out = render(src), target(src)
        if check:
            if not out.exists() or out.read_text() != text:
                stale.append(str(out))
        else:
            out.write_text(text)
            print(f"wrote {out}")
    if stale:
        sys.exit(f"stale notebooks (run python scripts/nbsrc.py notebooks/src/*.py): {', '.join(stale)}")
