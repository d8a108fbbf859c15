"""The docs' spec reference lists every key the loader accepts, and only those: the page is
generated from ``mapper/core/spec/keys.py`` when the site is built (docs/hooks/spec_reference.py),
beside the meanings written in docs/hooks/spec_keys.yml, which must cover the same keys."""

from __future__ import annotations

import yaml

from mapper.core.spec import keys, loads_spec
from tests.paths import ROOT

MEANINGS = yaml.safe_load((ROOT / "docs" / "hooks" / "spec_keys.yml").read_text())
SPEC_PAGE = (ROOT / "docs" / "spec.md").read_text()


def test_every_key_the_loader_accepts_has_a_meaning_and_no_meaning_names_another() -> None:
    allowed = {(where, key) for where, ks in keys.ALLOWED.items() for key in ks}
    documented = {(where, key) for where, ks in MEANINGS.items() for key in ks}
    assert sorted(allowed - documented) == [], "keys the loader accepts but docs/hooks/spec_keys.yml does not explain"
    assert sorted(documented - allowed) == [], "keys docs/hooks/spec_keys.yml explains but the loader refuses"
    assert all(isinstance(m, str) and m.strip() for ks in MEANINGS.values() for m in ks.values())


def test_the_docs_fuller_example_loads() -> None:
    section = SPEC_PAGE.split("## A fuller example", 1)[1]
    extra = section.split("```yaml\n", 1)[1].split("```", 1)[0].replace("/var/lib/latmap/pinned/report.json",
                                                                        "pinned.json")
    head = ("name: trading\nsources: {prom: {kind: prometheus, url: 'http://127.0.0.1:9090'}}\n"
            "stages:\n  - {name: alerting, process: {source: prom, histogram: a_seconds}}\n"
            "  - {name: notification, process: {source: prom, histogram: n_seconds}}\n")
    spec = loads_spec(head + extra)
    assert [e.name for e in spec.events] == ["fomc", "market-open"]
    assert [(c.hop, c.kind, c.value) for c in spec.future] == [("alerting", "scale", 0.5), ("notification", "cap", 0.2)]
