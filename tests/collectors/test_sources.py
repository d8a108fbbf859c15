"""Every source kind is a Source: it says what it gives, and refuses the rest with its place."""

from __future__ import annotations

from pathlib import Path

import pytest

from collectors.sources import make_source
from mapper.core.errors import SourceError, SpecError
from mapper.core.model import Window
from mapper.core.spec import Measurement, SourceSpec
from mapper.core.spec.flow import FlowMetric

WINDOW = Window(0.0, 3600.0)


def _source(kind: str, url: str = "http://127.0.0.1:1", path: str | None = None) -> SourceSpec:
    return SourceSpec("s", kind, url, "stream.yaml:4", path=path)


def test_each_kind_says_what_it_gives(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    (spool / "_wal").mkdir(parents=True)
    local = make_source(_source("traces", "", str(spool)))
    assert local.gives == {"spans", "partitions"} and local.partitioned == str(spool)
    assert make_source(_source("prometheus")).gives == {"histograms", "summaries", "hourly", "labels", "slices",
                                                         "exemplars", "flow"}
    assert make_source(_source("scrape")).gives == {"histograms", "summaries"}
    assert make_source(_source("traces", "", str(tmp_path / "otlp.jsonl"))).gives == {"spans"}
    by_url = make_source(_source("traces", "", "http://127.0.0.1:1/spool"))
    assert by_url.gives == {"spans", "partitions"} and by_url.partitioned == "http://127.0.0.1:1/spool"


def test_what_a_kind_does_not_give_is_refused_with_its_place() -> None:
    m = Measurement("s", "histogram", "x_seconds", "stream.yaml:9", {})
    scrape = make_source(_source("scrape"))
    with pytest.raises(SourceError, match=r"stream.yaml:4: a scrape source gives no hourly bucket counts"):
        scrape.hourly_buckets(m, WINDOW)
    with pytest.raises(SourceError, match=r"stream.yaml:4: a scrape source gives no spans"):
        scrape.spans(WINDOW)
    with pytest.raises(SourceError, match=r"stream.yaml:4: a scrape source gives no label slices"):
        scrape.label_histograms(m, WINDOW, "pod")
    gauge = FlowMetric("s", "gauge", "queue_depth", "stream.yaml:12")
    with pytest.raises(SourceError, match=r"stream.yaml:4: a scrape source gives no gauges"):
        scrape.gauge_range(gauge, WINDOW)
    with pytest.raises(SourceError, match=r"stream.yaml:4: a traces source gives no counters"):
        make_source(_source("traces", "", "/nonexistent")).counter_increase(gauge, WINDOW)
    traces = make_source(_source("traces", "", "/nonexistent"))
    with pytest.raises(SourceError, match=r"stream.yaml:4: a traces source gives no exemplars"):
        traces.exemplars(m, WINDOW, ("trace_id",), "here")
    assert traces.partitioned is None


def test_an_unknown_kind_is_a_spec_error() -> None:
    with pytest.raises(SpecError, match="no collector for source kind 'influx'"):
        make_source(_source("influx"))
