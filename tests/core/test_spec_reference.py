"""The README's spec reference lists every key the loader accepts, and only those."""

from __future__ import annotations

import re

from mapper.core.spec import keys, loads_spec
from tests.paths import ROOT

README = (ROOT / "README.md").read_text()


def _reference_rows() -> set[tuple[str, str]]:
    section = README.split("### Spec reference: every key", 1)[1].split("\n## ", 1)[0]
    rows = set()
    for line in section.splitlines():
        m = re.match(r"^\| ([^|`]+?) \| `([a-z_]+)` \|", line)
        if m:
            rows.add((m.group(1).strip(), m.group(2)))
    return rows


def test_the_readme_reference_and_the_loader_allow_the_same_keys() -> None:
    allowed = {(where, key) for where, ks in keys.ALLOWED.items() for key in ks}
    documented = _reference_rows()
    assert sorted(allowed - documented) == [], "keys the loader accepts but the README does not list"
    assert sorted(documented - allowed) == [], "keys the README lists but the loader refuses"


def test_the_readmes_fuller_example_loads() -> None:
    section = README.split("### Spec reference: every key", 1)[1]
    extra = section.split("```yaml\n", 1)[1].split("```", 1)[0].replace("/var/lib/latmap/pinned/report.json",
                                                                        "pinned.json")
    head = ("name: trading\nsources: {prom: {kind: prometheus, url: 'http://127.0.0.1:9090'}}\n"
            "stages:\n  - {name: alerting, process: {source: prom, histogram: a_seconds}}\n"
            "  - {name: notification, process: {source: prom, histogram: n_seconds}}\n")
    spec = loads_spec(head + extra)
    assert [e.name for e in spec.events] == ["fomc", "market-open"]
    assert [(c.hop, c.kind, c.value) for c in spec.future] == [("alerting", "scale", 0.5), ("notification", "cap", 0.2)]
