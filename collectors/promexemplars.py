"""Exemplars from Prometheus: observations a histogram kept with their trace id.

``/api/v1/query_exemplars?query=...&start=...&end=...`` answers (Prometheus 2.26+, with
``--enable-feature=exemplar-storage``)::

    {"status": "success", "data": [
      {"seriesLabels": {"__name__": "x_bucket", "le": "0.5", ...},
       "exemplars": [{"labels": {"trace_id": "..."}, "value": "0.42", "timestamp": 1700000000.123}]}]}

``value`` is a string (the observed value, in the metric's unit), ``timestamp`` Unix
seconds. Each exemplar becomes an :class:`Exemplar` in seconds; bad ones are counted in
checks with stable codes, never raised: ``exemplar-no-trace-id`` (none of the trace id
labels), ``exemplar-malformed-trace-id`` (not 16 or 32 hex digits, or all zeros),
``exemplar-outside-window`` (Prometheus may answer with exemplars just outside the range),
``exemplar-malformed`` (a value or timestamp that is not a number).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from collectors.promjson import decode_envelope
from collectors.promql import selector
from mapper.core.errors import SourceError
from mapper.core.model import Check, Window
from mapper.core.spec import Measurement

_TRACE_ID = re.compile(r"(?:[0-9a-fA-F]{16}|[0-9a-fA-F]{32})")  # whole value: fullmatch


@dataclass(frozen=True)
class Exemplar:
    """One exemplar: its trace id (32 lower-case hex digits), observed value (seconds), timestamp
    (Unix seconds) and the upper bound of its bucket (seconds; None: a native histogram)."""

    trace_id: str
    value: float
    timestamp: float
    bucket: float | None = None


def decode_exemplars(body: Any, url: str) -> list[dict[str, Any]]:
    """The series of a ``/api/v1/query_exemplars`` answer (an error answer raises)."""
    data = decode_envelope(body, url)["data"]
    if data is None:
        return []
    if not isinstance(data, list):
        raise SourceError(f"{url}: data: expected a list of series with exemplars")
    return [s for s in data if isinstance(s, dict)]


def exemplar_query(m: Measurement) -> str:
    """The selector whose exemplars are read: the classic buckets and the native series."""
    return f"{selector(m.name + '_bucket', m.selector)} or {selector(m.name, m.selector)}"


def parse_exemplars(series: Sequence[dict[str, Any]], m: Measurement, window: Window,
                    trace_labels: Sequence[str], where: str) -> tuple[list[Exemplar], list[Check]]:
    """Exemplars of the series inside ``window`` with a well-formed trace id, in seconds;
    the others counted in checks."""
    out: list[Exemplar] = []
    bad: Counter[str] = Counter()
    for s in series:
        labels = s.get("seriesLabels")
        bucket = _float(labels.get("le")) if isinstance(labels, dict) else None
        for e in s.get("exemplars") or []:
            if not isinstance(e, dict):
                bad["exemplar-malformed"] += 1
                continue
            value, ts = _float(e.get("value")), _float(e.get("timestamp"))
            if value is None or ts is None or not math.isfinite(value):
                bad["exemplar-malformed"] += 1
                continue
            el = e.get("labels")
            if not isinstance(el, dict):
                el = {}
            tid = next((str(el[k]) for k in trace_labels if k in el), None)
            if tid is None:
                bad["exemplar-no-trace-id"] += 1
            elif not _TRACE_ID.fullmatch(tid) or not tid.strip("0"):
                bad["exemplar-malformed-trace-id"] += 1
            elif not window.start <= ts <= window.end:
                bad["exemplar-outside-window"] += 1
            else:
                # a 64-bit id is the W3C trace id with 16 leading zeros (as OTLP carries it),
                # so an exemplar names a trace the way the spool and the live series do
                out.append(Exemplar(tid.lower().rjust(32, "0"), value * m.scale, ts,
                                    bucket * m.scale if bucket is not None and math.isfinite(bucket) else None))
    said = {"exemplar-no-trace-id": f"without a trace id label ({', '.join(trace_labels)})",
            "exemplar-malformed-trace-id": "whose trace id is not 16 or 32 hex digits",
            "exemplar-outside-window": "outside the window",
            "exemplar-malformed": "whose value or timestamp is not a number"}
    checks = [Check("warning" if code != "exemplar-outside-window" else "info", code,
                    f"{where}: {n:,} exemplar(s) {said[code]}; not used as examples")
              for code, n in sorted(bad.items())]
    out.sort(key=lambda x: (x.timestamp, x.trace_id, x.value))
    return out, checks


def _float(x: Any) -> float | None:
    if isinstance(x, bool) or x is None:
        return None
    try:
        return float(x)
    except (TypeError, ValueError):
        return None
