"""MkDocs hook: the pages generated from the code at build time, so they cannot drift from it.

* ``reference/spec-keys.md``: every key the spec loader accepts, by place, straight from
  :data:`mapper.core.spec.keys.ALLOWED`, beside its meaning from ``docs/hooks/spec_keys.yml``.
  A key without a meaning, or a meaning for a key the loader refuses, fails the build
  (``PluginError``, with or without ``--strict``): add the words when you add the key.
* ``reference/report.schema.json``: the report.json JSON Schema the wheel ships
  (``mapper/render/report.schema.json``), served beside the docs; the report.json page shows
  it where it says ``<!-- report-schema -->``.

Wired in ``mkdocs.yml`` (``hooks:``); needs mkdocs >= 1.6 (``File.generated``).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml
from mkdocs.config.defaults import MkDocsConfig
from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File, Files
from mkdocs.structure.pages import Page

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # `mkdocs build` from a checkout that is not pip-installed
    sys.path.insert(0, str(ROOT))

from mapper.core.spec import keys  # noqa: E402  (after the path above)

MEANINGS = Path(__file__).with_name("spec_keys.yml")
SCHEMA = ROOT / "mapper" / "render" / "report.schema.json"
SPEC_PAGE = "reference/spec-keys.md"
SCHEMA_FILE = "reference/report.schema.json"
SCHEMA_MARK = "<!-- report-schema -->"

HEAD = """# Spec reference: every key

<!-- Generated at build time by docs/hooks/spec_reference.py from mapper/core/spec/keys.py and
docs/hooks/spec_keys.yml: edit those, not this page. -->

The loader accepts exactly these keys (`mapper/core/spec/keys.py`; this page is generated from
it when the site is built, and the build fails when a key has no meaning written for it).
Anything else is an error naming its `file:line`. What the keys are for, with examples, is on
[The stream spec](../spec.md).

The keys under `objectives` are not fixed names: percentiles (`p99`) under a stage, and
`end_to_end` or a stage name at the top level. `end_to_end` at the top level is a measurement
with the keys of `stages[].wait` (or their Datadog form).

| where | key | meaning |
| --- | --- | --- |
"""


def meanings() -> dict[str, dict[str, str]]:
    """``{place: {key: meaning}}`` as written in ``spec_keys.yml``."""
    loaded = yaml.safe_load(MEANINGS.read_text(encoding="utf-8"))
    return {str(w): {str(k): str(v) for k, v in ks.items()} for w, ks in loaded.items()}


def drift(written: dict[str, dict[str, str]]) -> list[str]:
    """Every disagreement between the loader's keys and the written meanings (empty: none)."""
    problems = []
    for where, ks in keys.ALLOWED.items():
        have = written.get(where, {})
        problems += [f"{where}: `{k}` is accepted by the loader but has no meaning in {MEANINGS.name}"
                     for k in ks if k not in have]
        problems += [f"{where}: `{k}` has a meaning in {MEANINGS.name} but the loader refuses it"
                     for k in have if k not in ks]
    problems += [f"{where}: a place in {MEANINGS.name} that keys.ALLOWED does not name"
                 for where in written if where not in keys.ALLOWED]
    return problems


def _cell(text: str) -> str:
    """A meaning inside a Markdown table cell: ``|`` escaped outside code spans (Python-Markdown
    keeps a code span's ``|`` in its cell, and would show the backslash)."""
    parts = text.split("`")
    return "`".join(p if i % 2 else p.replace("|", "\\|") for i, p in enumerate(parts))


def spec_reference_markdown() -> str:
    """The generated page: one row per (place, key) in the order of ``keys.ALLOWED``."""
    written = meanings()
    problems = drift(written)
    if problems:
        raise PluginError("spec reference out of step with mapper/core/spec/keys.py:\n  " + "\n  ".join(problems))
    rows = [f"| {where} | `{k}` | {_cell(written[where][k])} |" for where, ks in keys.ALLOWED.items() for k in ks]
    return HEAD + "\n".join(rows) + "\n"


def on_files(files: Files, config: MkDocsConfig, **_: Any) -> Files:
    files.append(File.generated(config, SPEC_PAGE, content=spec_reference_markdown()))
    files.append(File.generated(config, SCHEMA_FILE, abs_src_path=str(SCHEMA)))
    return files


def on_page_markdown(markdown: str, page: Page, **_: Any) -> str:
    if SCHEMA_MARK not in markdown:
        return markdown
    return markdown.replace(SCHEMA_MARK, "```json\n" + SCHEMA.read_text(encoding="utf-8").rstrip() + "\n```")
