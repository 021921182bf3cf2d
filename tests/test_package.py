"""The package's shape: no module imports one that imports it back, the leaf modules import nothing
from siautil, the numeric modules load without torch, and every module has its tests."""

import ast
import re
import subprocess
import sys
from pathlib import Path

import siautil

ROOT = Path(siautil.__file__).resolve().parent
TESTS = Path(__file__).resolve().parent


def _modules() -> dict[str, Path]:
    out = {}
    for p in ROOT.rglob("*.py"):
        parts = ("siautil",) + p.relative_to(ROOT).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = p
    return out


def _imports(mods: dict[str, Path]) -> dict[str, set[str]]:
    """Every siautil module each module imports, at import time or inside a function. A
    package's own submodules importing it are not counted (``from . import x`` names the
    submodule ``x``)."""
    edges = {m: set() for m in mods}
    for m, p in mods.items():
        package = m if p.name == "__init__.py" else m.rsplit(".", 1)[0]
        tree = ast.parse(p.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(up + ([node.module] if node.module else []))
                subs = [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in mods]
                targets = subs or [base]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            edges[m] |= {t for t in targets if t in mods and t != m}
    return edges


def _reachable(edges, start):
    seen, todo = set(), [start]
    while todo:
        for nxt in edges[todo.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def test_no_module_imports_one_that_imports_it_back():
    edges = _imports(_modules())
    circles = sorted({tuple(sorted((a, b))) for a in edges for b in edges[a] if a in _reachable(edges, b)})
    assert not circles, f"import circles: {circles}"


#: The package's layers, lowest first (the README's module table follows them): a module imports
#: only from layers below its own, at import time or inside a function.
LAYERS = [
    ("errors", "paths", "checkpoints", "streams", "infotheory", "schema", "tasks.extract", "kvbuffer", "sampling",
     "offline", "tables", "workers", "memory"),
    ("tasks", "tasks.base", "tasks.datafiles", "tasks.arc", "tasks.easy", "tasks.gsm8k", "tasks.svamp", "tasks.toy",
     "store", "theory"),
    ("models", "estimators", "records", "decode"),
    ("rollout", "oracle", "diagnostics", "paper"),
    ("coefficient", "toy", "config", "vllm_engine", "plots"),
    ("informativeness", "choices", "grid", "testing"),
    ("regimes", "runs"),
    ("cluster", "book"),
    ("cli",),
]


def test_no_module_imports_one_from_its_own_layer_or_above():
    mods = _modules()
    layer = {f"siautil.{name}": k for k, names in enumerate(LAYERS) for name in names}
    assert set(layer) == set(mods) - {"siautil"}, f"modules without a layer: {set(mods) - set(layer) - {'siautil'}}"
    edges = _imports(mods)
    # a package's own submodules sit in its layer and may import one another (tasks.base <- tasks.arc)
    upward = [(m, t) for m in edges for t in edges[m] if m != "siautil" and layer[t] >= layer[m]
              and not (m.startswith("siautil.tasks") and t.startswith("siautil.tasks"))]
    assert not upward, f"imports from the same layer or above: {upward}"


def test_the_readme_s_module_table_has_every_module_in_its_layer():
    table = {}
    for line in (ROOT.parent / "README.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) == 3 and cells[0].isdigit():
            for name in re.findall(r"`siautil\.([a-z_.]+)`", cells[1]):
                table[name] = int(cells[0])
    layer = {name: k for k, names in enumerate(LAYERS) for name in names if "." not in name or name == "tasks.extract"}
    layer |= {"tasks": 1}
    assert table == layer


def test_the_checker_finds_a_circle():
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert "a" in _reachable(edges, "b") and "d" not in _reachable(edges, "a")


def _siautil_imports(module: str) -> set[str]:
    tree = ast.parse((ROOT / f"{module}.py").read_text())
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("siautil")):
            out.add(node.module or "")
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("siautil")}
    return out


def test_leaf_modules_import_nothing_from_siautil():
    assert _siautil_imports("infotheory") == set()
    assert _siautil_imports("checkpoints") == set()


def test_oracle_and_theory_load_without_torch():
    code = "import sys, siautil.oracle, siautil.theory, siautil.estimators; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_every_module_has_a_test_file():
    # tests/test_<module>.py for siautil/<module>.py; a task module's tests live in test_tasks.py
    # or test_<module>.py; __init__ and the test builders themselves need none
    missing = []
    for name, path in _modules().items():
        short = name.split(".")[-1]
        if path.name == "__init__.py" or short in ("testing", "errors"):
            continue
        candidates = [TESTS / f"test_{short}.py"]
        if ".tasks." in name:
            candidates.append(TESTS / "test_tasks.py")
        if not any(c.exists() for c in candidates):
            missing.append(name)
    assert not missing, f"modules without tests/test_<module>.py: {missing}"
