"""Segments: hour-of-day and weekday profiles, label slices and event windows, on data whose
answer is known by construction (the demo day in a real Prometheus, synthetic traces)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from collectors.prom_segments import hourly_buckets, label_buckets
from collectors.prometheus import PrometheusClient
from mapper.analysis.events import NEIGHBOURS, SAME_HOURS, compare_event_hourly, compare_event_samples
from mapper.analysis.merge import Summary, bins_for_ranks, merge_summaries, merged_samples, ranks_needed, values_in
from mapper.analysis.profiles import DAY, hour_of_day, profile_from_hourly, profile_from_samples
from mapper.analysis.segments import (
    PEAK_CONFIDENCE,
    PEAK_PERCENTILE,
    MergedSegment,
    build_segments,
    daily_peak,
    sample_plan,
    sample_slots,
    trace_samples,
)
from mapper.analysis.traces import TraceTable
from mapper.core.distribution import Distribution, Estimate, HistogramDistribution
from mapper.core.durations import format_time
from mapper.core.files import dumps
from mapper.core.model import HOUR, HourBuckets, Window
from mapper.core.spec import Measurement, SourceSpec, StreamSpec, loads_spec
from mapper.core.spec.extra import EventWindow
from mapper.demo.data import DemoData
from mapper.render.sections import segments_json
from tests import data

WINDOW = Window.ending(data.END, data.DAY)
WAIT = Measurement("prom", "histogram", "alert_queue_wait_seconds", "test:1")
SEND = Measurement("prom", "histogram", "notify_send_seconds", "test:2")
NIGHT_HOURS = range(0, 6)
MARKET_HOURS = range(15, 20)


def _spec(events: str = "", labels: Sequence[str] = ()) -> StreamSpec:
    text = f"""
name: seg
window: 24h
segments: {{labels: [{", ".join(labels)}]}}
sources: {{prom: {{kind: prometheus, url: "http://127.0.0.1:1"}}}}
stages:
  - name: alerting
    wait: {{source: prom, histogram: alert_queue_wait_seconds}}
  - name: notification
    process: {{source: prom, histogram: notify_send_seconds}}
{events}
"""
    return loads_spec(text)


def _at_hour(start: float, hour: int) -> float:
    """The first time at ``hour``:00 UTC at or after ``start``."""
    return start + (hour * HOUR - start) % DAY


def _contains(e: Estimate, x: float) -> bool:
    return (e.low is None or e.low <= x) and (e.high is None or x <= e.high)


def _apart(a: Estimate, b: Estimate) -> bool:
    """``a``'s interval lies wholly above ``b``'s."""
    return a.low is not None and b.high is not None and a.low > b.high


# --------------------------------------------------------------------------- Prometheus


@pytest.fixture(scope="module")
def client(prom_url: str) -> PrometheusClient:
    return PrometheusClient(SourceSpec("prom", "prometheus", prom_url, "test"), backoff=0.01)


@pytest.fixture(scope="module")
def wait_hours(client: PrometheusClient) -> list[HourBuckets]:
    return hourly_buckets(client, WAIT, WINDOW)


@pytest.mark.prometheus
def test_hourly_buckets_hold_each_whole_hour_of_the_raw_data(wait_hours: list[HourBuckets],
                                                             demo_data: DemoData) -> None:
    assert [r.start for r in wait_hours] == [WINDOW.start + i * HOUR for i in range(24)]
    for r in wait_hours:
        raw = demo_data.raw(WAIT.name, None, r.start, r.start + HOUR)
        assert r.buckets[math.inf] == pytest.approx(raw.size, rel=0.01)
        assert r.buckets[0.005] == pytest.approx(np.sum(raw <= 0.005), rel=0.01, abs=2)


@pytest.mark.prometheus
def test_hour_of_day_profile_shows_the_news_hour_and_market_hours(wait_hours: list[HourBuckets],
                                                                  demo_data: DemoData) -> None:
    profile = profile_from_hourly(wait_hours)
    p99 = [d.quantile(0.99) for d in profile.hours]
    p50 = [d.quantile(0.5) for d in profile.hours]
    for night in NIGHT_HOURS:
        assert _apart(p99[14], p99[night])
        for market in MARKET_HOURS:
            assert _apart(p50[market], p50[night])
            assert _apart(p99[market], p99[night])
    # Each hour's interval holds the exact quantile of that hour's raw observations, pooled
    # over the days of the window.
    starts = np.array([r.start for r in wait_hours])
    for h in range(24):
        raw = np.concatenate([demo_data.raw(WAIT.name, None, s, s + HOUR) for s in starts[hour_of_day(starts) == h]])
        assert profile.hours[h].count == pytest.approx(raw.size, rel=0.01)
        for q in (0.5, 0.99):
            assert _contains(profile.hours[h].quantile(q), float(np.quantile(raw, q))), (h, q)
    peak = daily_peak(profile, "alerting", "wait")
    assert peak is not None
    assert peak.code == "daily-peak"
    assert "peaks at 14:00-15:00 UTC" in peak.message


@pytest.mark.prometheus
def test_news_burst_is_flagged_against_its_quiet_neighbours(wait_hours: list[HourBuckets]) -> None:
    t14 = _at_hour(WINDOW.start, 14)
    fomc = EventWindow("FOMC", "test:1", start=t14, end=t14 + 900)
    c = compare_event_hourly(fomc, wait_hours, WINDOW, (0.5, 0.99), "alerting", "wait")
    assert c is not None
    # One day of data: no other day has 14:00, so the baseline is the hour before and after.
    assert c.basis == NEIGHBOURS
    assert "whole hours" in (c.note or "")
    assert c.event.count == pytest.approx(sum(r.buckets[math.inf] for r in wait_hours if r.start == t14))
    flagged = {d.label: d for d in c.flagged}
    assert "p99" in flagged
    d = flagged["p99"]
    assert d.ratio is not None
    assert d.ratio > 2
    assert d.message.startswith("alerting wait p99 during FOMC ")
    assert f"{d.ratio:.3g}x" in d.message


@pytest.mark.prometheus
def test_a_quiet_night_hour_is_not_flagged(wait_hours: list[HourBuckets]) -> None:
    t3 = _at_hour(WINDOW.start, 3)
    night = EventWindow("night", "test:1", start=t3, end=t3 + 900)
    c = compare_event_hourly(night, wait_hours, WINDOW, (0.5, 0.99, 0.999), "alerting", "wait")
    assert c is not None
    assert c.event.count > 0
    assert c.quiet.count > 0
    assert c.flagged == ()


@pytest.mark.prometheus
def test_label_segments_match_the_raw_data_per_provider(client: PrometheusClient, demo_data: DemoData) -> None:
    per = label_buckets(client, SEND, WINDOW, "provider")
    assert set(per) == {"twilio", "sns", "sendgrid"}
    report = build_segments(_spec(labels=["provider"]), WINDOW,
                            labels={"provider": {("notification", "process"): per}})
    for value in per:
        d = report.labels["provider"][value][("notification", "process")]
        raw = demo_data.raw(SEND.name, {"provider": value}, WINDOW.start, WINDOW.end)
        assert d.count == pytest.approx(raw.size, rel=1e-6)
        for q in (0.5, 0.99):
            assert _contains(d.quantile(q), float(np.quantile(raw, q))), (value, q)
    assert not [c for c in report.checks if c.code == "segment-label-missing"]


@pytest.mark.prometheus
def test_whole_section_with_bad_input_gives_checks_and_the_rest(client: PrometheusClient,
                                                                wait_hours: list[HourBuckets]) -> None:
    t14 = _at_hour(WINDOW.start, 14)
    old = WINDOW.start - 7 * DAY
    events = f"""events:
  - {{name: FOMC, start: "{format_time(t14)}", end: "{format_time(t14 + 900)}"}}
  - {{name: last-week, start: "{format_time(old)}", end: "{format_time(old + 900)}"}}
"""
    spec = _spec(events, labels=["region"])
    region = label_buckets(client, WAIT, WINDOW, "region")
    assert region == {}
    report = build_segments(spec, WINDOW, hourly={("alerting", "wait"): wait_hours},
                            labels={"region": {("alerting", "wait"): region}})
    codes = {c.code: c for c in report.checks}
    assert codes["event-outside-window"].level == "warning"
    assert "last-week" in codes["event-outside-window"].message
    assert "'region'" in codes["segment-label-missing"].message
    assert codes["event-difference"].stage == "alerting"
    assert "during FOMC" in codes["event-difference"].message
    assert "daily-peak" in codes
    doc = segments_json(report, spec.percentiles)
    dumps(doc)  # JSON-serialisable
    assert [e["name"] for e in doc["events"]] == ["FOMC"]
    assert doc["events"][0]["occurrences"] == [[format_time(t14), format_time(t14 + 900)]]
    assert "p99" in {f["percentile"] for f in doc["events"][0]["flagged"]}
    rows = doc["hour_of_day"]["alerting"]["wait"]
    assert [r["hour"] for r in rows] == list(range(24))
    assert rows[14]["p99"]["value"] > rows[3]["p99"]["value"]
    assert len(doc["weekday"]["alerting"]["wait"]) == 7
    assert doc["labels"] == {}


# --------------------------------------------------------------------------- traces

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z, a Thursday


def _trace_table(days: int, burst_days: Sequence[int], seed: int = 5, per_minute: int = 20) -> TraceTable:
    """``alerting`` waits (lognormal, median 2ms) over ``days`` days; on ``burst_days`` the
    queue grows 10x from 14:00 to 14:15 UTC. One trace per item."""
    rng = np.random.default_rng(seed)
    n = days * 1440 * per_minute
    start = T0 + np.sort(rng.random(n)) * days * DAY
    wait = rng.lognormal(math.log(0.002), 0.5, n)
    tod = start % DAY
    day = ((start - T0) // DAY).astype(int)
    wait = np.where(np.isin(day, burst_days) & (tod >= 14 * HOUR) & (tod < 14 * HOUR + 900), wait * 10, wait)
    process = rng.lognormal(math.log(0.001), 0.3, n)
    frame = pd.DataFrame({"trace": np.arange(n), "stage": "alerting", "start": start, "end": start + process,
                          "process": process, "wait": wait})
    return TraceTable(frame, ("alerting",), n, np.array([]), n)


def _window(days: int) -> Window:
    return Window(T0, T0 + days * DAY)


def test_traced_queue_growing_at_14_is_found_by_profile_and_event() -> None:
    t, v = trace_samples(_trace_table(3, [1]), "alerting")["wait"]
    profile = profile_from_samples(t, v)
    assert sum(d.count for d in profile.hours) == t.size
    assert profile.weekdays[3].count > 0  # 2026-01-01 is a Thursday
    p99 = [d.quantile(0.99) for d in profile.hours]
    assert all(_apart(p99[14], p99[h]) for h in range(24) if h != 14)
    ev = EventWindow("FOMC", "test:1", start=T0 + DAY + 14 * HOUR, end=T0 + DAY + 14 * HOUR + 900)
    c = compare_event_samples(ev, t, v, _window(3), (0.5, 0.99), "alerting", "wait")
    assert c is not None
    assert c.basis == SAME_HOURS  # 14:00-14:15 on the other two days
    assert c.note is None  # exact by timestamp
    in_event = (t >= ev.start) & (t < ev.end)  # type: ignore[operator]
    assert c.event.count == in_event.sum()
    assert c.quiet.count == pytest.approx(2 * c.event.count, rel=0.2)
    flagged = {d.label: d for d in c.flagged}
    assert set(flagged) == {"p50", "p99"}
    assert flagged["p50"].ratio == pytest.approx(10, rel=0.2)


def test_recurring_event_every_day_falls_back_to_neighbouring_hours() -> None:
    t, v = trace_samples(_trace_table(3, [0, 1, 2]), "alerting")["wait"]
    ev = EventWindow("daily", "test:1", cron="0 14 * * *", duration=900)
    c = compare_event_samples(ev, t, v, _window(3), (0.5,), "alerting", "wait")
    assert c is not None
    assert len(c.occurrences) == 3
    assert c.basis == NEIGHBOURS
    assert "hour before and after" in (c.note or "")
    assert [d.label for d in c.flagged] == ["p50"]


def test_noise_only_days_flag_nothing() -> None:
    table = _trace_table(3, [], seed=8)
    samples = {("alerting", part): tv for part, tv in trace_samples(table, "alerting").items()}
    events = """events:
  - {name: FOMC, start: "2026-01-02T14:00:00Z", end: "2026-01-02T14:15:00Z"}
  - {name: open, cron: "30 13 * * 1-5", duration: 1h}
"""
    spec = replace(_spec(events), percentiles=(0.5, 0.99))
    report = build_segments(spec, _window(3), samples=samples)
    assert len(report.events) == 4  # two events x (wait, process)
    assert all(c.event.count > 0 and c.quiet.count > 0 for c in report.events)
    assert [c for c in report.checks if c.level != "info"] == []
    assert not [c for c in report.checks if c.code == "daily-peak"]


def test_hour_of_day_uses_utc_whole_hours() -> None:
    t = np.array([T0, T0 + HOUR - 1e-6, T0 + HOUR, T0 + DAY - 1])
    assert hour_of_day(t).tolist() == [0, 0, 1, 23]


def test_hourly_rows_with_different_bucket_layouts_are_read_at_the_common_bounds() -> None:
    rows = [HourBuckets(T0, {}, {0.1: 5.0, 0.5: 8.0, math.inf: 10.0}),
            HourBuckets(T0 + HOUR, {}, {0.1: 1.0, 0.2: 2.0, 0.5: 3.0, math.inf: 4.0})]
    h: Distribution = profile_from_hourly(rows).weekdays[3]
    assert h.count == 14
    assert isinstance(h, HistogramDistribution)
    assert h.upper.tolist() == [0.1, 0.5, math.inf]
    assert h.counts.tolist() == [6, 5, 3]


def test_segments_merged_from_partitions_equal_the_samples_ones() -> None:
    """What a partitioned analysis does per traced part: slot each partition's samples, merge
    the slots' bin counts, pull the values of the needed bins: the same section, to the bit
    (same-hours baseline, a recurring event, the daily peak's Bonferroni intervals)."""
    table = _trace_table(3, [1])
    samples = {("alerting", part): tv for part, tv in trace_samples(table, "alerting").items()}
    events = """events:
  - {name: FOMC, start: "2026-01-02T14:00:00Z", end: "2026-01-02T14:15:00Z"}
  - {name: open, cron: "30 13 * * 1-5", duration: 1h}
"""
    spec = replace(_spec(events), percentiles=(0.5, 0.99))
    plan = sample_plan(spec, _window(3), list(samples), (0.5, 0.99))
    parts = np.random.default_rng(3).integers(0, 4, samples[("alerting", "wait")][0].size)
    merged = {}
    for key, (t, v) in samples.items():
        slotted = [dict(sample_slots(t[parts == p], plan.events)) for p in range(4)]
        keys = {s for d in slotted for s in d}
        slots = {}
        for s in keys:
            pv = [(v[parts == p][d[s]]) for p, d in enumerate(slotted) if s in d]
            m = merge_summaries(Summary.of(x) for x in pv)
            ranks = sorted({*ranks_needed(m.n, plan.qs), *ranks_needed(m.n, (PEAK_PERCENTILE,), PEAK_CONFIDENCE)})
            wanted = bins_for_ranks(m, ranks)
            slots[s] = merged_samples(m, ranks, [values_in(x, wanted) for x in pv])
        merged[key] = MergedSegment.of(slots, plan, merged_samples(merge_summaries([]), [], []))
    memory = build_segments(spec, _window(3), samples=samples)
    merged_report = build_segments(spec, _window(3), merged=merged)
    assert segments_json(merged_report, spec.percentiles) == segments_json(memory, spec.percentiles)
    assert merged_report.checks == memory.checks
    assert any(c.code == "daily-peak" for c in memory.checks)
    assert {c.basis for c in memory.events} == {SAME_HOURS}
    for key, (starts, dists) in memory.series.items():
        m_starts, m_dists = merged_report.series[key]
        assert m_starts.tolist() == starts.tolist()
        assert [d.quantile(0.99) for d in m_dists] == [d.quantile(0.99) for d in dists]
