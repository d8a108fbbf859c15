"""Bucket advice (:mod:`mapper.analysis.buckets`) as JSON and as text with ready snippets for
prometheus-client, the OpenTelemetry SDK and native histograms. Formatting only.

JSON, one entry per part: ``{"stage", "part", "metric", "unit", "method": "observations" |
"histogram", "bounds": [seconds], "bounds_in_unit": [...], "thresholds": [seconds],
"verified": bool, "native_schema": int, "percentiles": [{"percentile", "value", "low",
"high", "width", "ok", "note"}], "snippets": {"prometheus_client", "opentelemetry", "native"}}``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mapper.analysis.buckets import BucketAdvice
from mapper.core.durations import format_duration
from mapper.render.cells import num

__all__ = ["buckets_json", "buckets_table", "snippets"]


def snippets(a: BucketAdvice) -> dict[str, str]:
    """Code that makes the advised layout: a prometheus-client Histogram, an OTel SDK View,
    and the native-histogram setting achieving the same width."""
    name = a.metric or f"{a.stage.replace('-', '_')}_{a.part}_seconds"
    bounds = ", ".join(f"{b:g}" for b in a.bounds_in_unit)
    return {
        "prometheus_client": f'Histogram("{name}", "{a.stage} {a.part} time ({a.unit})", buckets=[{bounds}])',
        "opentelemetry": (f'View(instrument_name="{name}", '
                          f"aggregation=ExplicitBucketHistogramAggregation(boundaries=[{bounds}]))"),
        "native": (f"native histogram schema {a.native_schema} (bucket factor "
                   f"{2 ** (2 ** -a.native_schema):.4g}): prometheus-client Go "
                   f"NativeHistogramBucketFactor={2 ** (2 ** -a.native_schema):.4g}; OTel "
                   f"ExponentialBucketHistogramAggregation(max_scale={a.native_schema})"),
    }


def buckets_json(advice: Sequence[BucketAdvice]) -> list[dict[str, Any]]:
    return [{
        "stage": a.stage, "part": a.part, "metric": a.metric, "unit": a.unit, "method": a.method,
        "bounds": [num(b) for b in a.bounds], "bounds_in_unit": list(a.bounds_in_unit),
        "thresholds": [num(t) for t in a.thresholds], "verified": a.verified, "native_schema": a.native_schema,
        "percentiles": [{"percentile": f.label, "value": num(f.value), "low": num(f.low), "high": num(f.high),
                         "width": num(f.width), "ok": f.ok, "note": f.note} for f in a.fits],
        "snippets": snippets(a),
    } for a in advice]


def buckets_table(advice: Sequence[BucketAdvice], width: float) -> str:
    lines = []
    for a in advice:
        head = f"{a.stage} {a.part}" + (f" ({a.metric})" if a.metric else "")
        lines.append(f"{head}: {len(a.bounds)} bounds for intervals narrower than {width:.3g} of each value "
                     f"(from {a.method}{', verified on them' if a.verified else ', not verifiable'})")
        lines.append("  bounds: " + ", ".join(format_duration(b) for b in a.bounds))
        if a.thresholds:
            lines.append("  on the thresholds: " + ", ".join(format_duration(t) for t in a.thresholds))
        for f in a.fits:
            if f.width is not None:
                lines.append(f"  {f.label}: {format_duration(f.value or 0)} "
                             f"[{format_duration(f.low or 0)}..{format_duration(f.high or 0)}] "
                             f"width {f.width:.2%}{'' if f.ok else ' (too wide: ' + str(f.note) + ')'}")
            elif a.verified:
                lines.append(f"  {f.label}: {f.note}")
        for key, text in snippets(a).items():
            lines.append(f"  {key}: {text}")
    return "\n".join(lines) + "\n"
