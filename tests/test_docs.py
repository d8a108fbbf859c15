"""The README is a front page (at most 300 lines, starting with the two set-up commands) whose
links reach the docs; every docs page is in the site's navigation. ``mkdocs build --strict``
checks the rest (links and anchors between pages, the generated reference) where the docs
extra is installed."""

from __future__ import annotations

import re

import yaml

from tests.paths import ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")
DOCS = ROOT / "docs"
SETUP = [
    "pip install -e . && latmap demo                 # map a simulated trading chain: no server needed",
    "apt-get update && apt-get install -y prometheus victoria-metrics prometheus-pushgateway chromium"
    " && pip install -e '.[dev]' && python3 -m pytest -n auto --dist loadfile   # the whole test suite",
]


def test_the_readme_is_a_front_page_of_at_most_300_lines() -> None:
    assert len(README.splitlines()) <= 300


def test_the_readme_starts_with_the_two_setup_commands() -> None:
    lines = README.splitlines()
    assert lines[0].startswith("# latmap")
    first = [ln for ln in lines[1:] if ln.strip()][:4]
    assert first == ["```sh", *SETUP, "```"]


def test_the_readmes_local_links_and_pictures_exist() -> None:
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", README)
    local = [t for t in targets if "://" not in t]
    assert "docs/demo-report.png" in local and "docs/getting-started.md" in local
    assert [t for t in local if not (ROOT / t).exists()] == []


def _nav_pages(node: object) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, list):
        return [p for item in node for p in _nav_pages(item)]
    if isinstance(node, dict):
        return [p for v in node.values() for p in _nav_pages(v)]
    return []


def test_every_docs_page_is_in_the_navigation_and_every_entry_is_a_page() -> None:
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
    nav = _nav_pages(config["nav"])
    generated = {"reference/spec-keys.md"}  # docs/hooks/spec_reference.py writes it at build time
    written = {p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md")}
    assert sorted(written - set(nav)) == []
    assert sorted(set(nav) - written - generated) == []
    assert len(nav) == len(set(nav))
