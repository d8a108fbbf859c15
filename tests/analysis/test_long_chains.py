"""A stream of a thousand stages is analysed and rendered without recursion (the path walk
is iterative); the convolution of a thousand measured hops is a cost, not a crash, so the
stages here have no data and the map says so."""

from __future__ import annotations

from mapper.analysis.latency import analyse
from mapper.core.model import MeasurementResult, Window
from mapper.core.spec import loads_spec
from mapper.render.report import to_json, to_markdown, to_table


def test_a_chain_of_1000_stages_is_walked_and_rendered() -> None:
    text = ("version: 1\nname: chain\nsources: {p: {kind: prometheus, url: 'http://127.0.0.1:9'}}\nstages:\n"
            + "".join(f"  - {{name: s{i}, owner: o, process: {{source: p, histogram: h{i}}}}}\n" for i in range(1000)))
    spec = loads_spec(text)
    results = {(f"s{i}", "process"): MeasurementResult(None, f"p: h{i}") for i in range(1000)}
    lm = analyse(spec, Window.ending(1_767_436_620.0, 3600.0), results)
    doc = to_json(lm)
    assert len(doc["stages"]) == 1000 and doc["path"][0] == "s0" and doc["path"][-1] == "s999"
    assert "s999" in to_markdown(lm) and "s999" in to_table(lm)
