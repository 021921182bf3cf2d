"""The publish workflow (.github/workflows/book.yml): it parses, builds the book with the README's
command, and hands _build/html to GitHub Pages."""

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / ".github" / "workflows" / "book.yml"


def _workflow() -> dict:
    return yaml.safe_load(WORKFLOW.read_text())


def test_the_workflow_builds_the_book_with_the_readme_s_command():
    jobs = _workflow()["jobs"]
    steps = jobs["build"]["steps"]
    commands = [s["run"] for s in steps if "run" in s]
    assert any(c.strip() == "make book" for c in commands), commands
    assert "make book" in (ROOT / "README.md").read_text().split("\n## ")[0]  # the same command as the README's


def test_the_workflow_publishes_the_built_html_to_pages_on_every_push_to_main():
    flow = _workflow()
    on = flow.get("on", flow.get(True))  # YAML 1.1 reads the key `on` as true
    assert on["push"]["branches"] == ["main"] and "workflow_dispatch" in on
    build, deploy = flow["jobs"]["build"], flow["jobs"]["deploy"]
    upload = [s for s in build["steps"] if s.get("uses", "").startswith("actions/upload-pages-artifact@")]
    assert upload and upload[0]["with"]["path"] == "_build/html"
    assert deploy["needs"] == "build"
    assert any(s.get("uses", "").startswith("actions/deploy-pages@") for s in deploy["steps"])
    assert flow["permissions"] == {"contents": "read", "pages": "write", "id-token": "write"}
