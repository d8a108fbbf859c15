"""The flow of a value stream (issue 27) as every renderer shows it: ``report.json``'s
``stages[].flow`` and top-level ``flow``, the flow table (terminal, Markdown, HTML) and the
rework and hand-over lines under it.

The values come from :class:`mapper.analysis.flow_model.StreamFlow` on ``LatencyMap.flow``;
nothing here computes a figure. A figure the data cannot give is ``null`` in JSON and ``—``
in text, and the reason is the check an analysis step wrote for that stage
(:func:`flow_reasons`), never a number made up to fill the cell.

JSON keys (the contract, documented in docs/report-json.md and report.schema.json):
``source, items_in, items_out, yield, stopped, next: [{stage, items, share}],
throughput_in_per_s, throughput_out_per_s, first_pass_yield, failed, retried,
rework_seconds, rework_share, inventory: {mean, peak, little, hourly, source, provenance}
| null, workers, workers_source, utilisation, utilisation_peak_hour, capacity_per_s,
headroom, busy_seconds``.
"""

from __future__ import annotations

from typing import Any

from mapper.analysis.flow_model import Inventory, StageFlow, StreamFlow
from mapper.analysis.latency import LatencyMap
from mapper.core.durations import format_duration
from mapper.core.escape import html_text
from mapper.core.model import Check
from mapper.render.cells import count_json, num

#: What a figure the data cannot give shows as in text.
DASH = "—"
#: The flow table's columns, in order.
FLOW_HEAD = ("stage", "in", "out", "yield", "%C&A", "inventory mean/peak", "utilisation", "workers",
             "capacity", "headroom")
#: Check codes about the flow (issue 27), besides any check whose ``part`` is in FLOW_PARTS.
FLOW_CODES = frozenset({"rework", "inventory-growing", "utilisation-high", "little-disagrees"})
#: Check ``part`` values that are about a stage's flow rather than its latency.
FLOW_PARTS = frozenset({"flow", "items", "yield", "rework", "inventory", "utilisation", "workers"})


def _count(x: float | None) -> int | float | None:
    return None if x is None else count_json(x)


def _inventory_json(inv: Inventory | None) -> dict[str, Any] | None:
    if inv is None:
        return None
    return {"mean": num(inv.mean), "peak": num(inv.peak), "little": num(inv.little),
            "hourly": [num(h) for h in inv.hourly], "source": inv.source, "provenance": inv.provenance}


def stage_flow_json(f: StageFlow | None) -> dict[str, Any] | None:
    """A stage's ``flow`` object of report.json, or None when the map has no flow for it."""
    if f is None:
        return None
    r, u = f.rework, f.utilisation
    return {
        "source": f.source,
        "items_in": _count(f.items_in), "items_out": _count(f.items_out), "stopped": _count(f.stopped),
        "yield": num(f.yield_),
        "next": [{"stage": h.to, "items": _count(h.items), "share": num(h.share)} for h in f.handovers],
        "throughput_in_per_s": num(f.throughput_in_per_s), "throughput_out_per_s": num(f.throughput_out_per_s),
        "first_pass_yield": num(r.first_pass_yield) if r else None,
        "failed": _count(r.failed) if r else None, "retried": _count(r.retried) if r else None,
        "rework_seconds": num(r.seconds) if r else None, "rework_share": num(r.share_of_lead) if r else None,
        "inventory": _inventory_json(f.inventory),
        "workers": u.workers if u else None, "workers_source": u.workers_source if u else None,
        "utilisation": num(u.value) if u else None, "utilisation_peak_hour": num(u.peak_hour) if u else None,
        "capacity_per_s": num(u.capacity_per_s) if u else None, "headroom": num(u.headroom) if u else None,
        "busy_seconds": num(u.busy_seconds) if u else None,
    }


def stream_flow_json(flow: StreamFlow | None) -> dict[str, Any] | None:
    """report.json's top-level ``flow``: the items that reached the stream's end (the lead
    time is defined over them), or None when the map has no flow."""
    if flow is None:
        return None
    return {"items_completed": _count(flow.items_completed)}


# --------------------------------------------------------------------------- text


def pct(x: float | None) -> str:
    """A share for people: ``97.0%``, or the dash."""
    return DASH if x is None else f"{100 * x:.1f}%"


def qty(x: float | None) -> str:
    """A count of items for people: whole counts with separators, small means with a decimal."""
    if x is None:
        return DASH
    if abs(x - round(x)) < 1e-9:
        return f"{round(x):,}"
    return f"{x:.1f}" if abs(x) < 100 else f"{x:,.0f}"


def rate(x: float | None) -> str:
    return DASH if x is None else f"{x:.3g}/s"


def workers_cell(f: StageFlow) -> str:
    u = f.utilisation
    if u is None or u.workers is None:
        return DASH
    return f"{u.workers}" + (f" ({u.workers_source})" if u.workers_source else "")


def utilisation_cell(f: StageFlow) -> str:
    u = f.utilisation
    if u is None or u.value is None:
        return DASH
    return pct(u.value) + (f" (peak hour {pct(u.peak_hour)})" if u.peak_hour is not None else "")


def inventory_cell(f: StageFlow) -> str:
    inv = f.inventory
    if inv is None or (inv.mean is None and inv.peak is None):
        return DASH
    return f"{qty(inv.mean)} / {qty(inv.peak)}"


def headroom_cell(f: StageFlow) -> str:
    u = f.utilisation
    return DASH if u is None or u.headroom is None else f"{u.headroom:.2f}x"


def flow_row(f: StageFlow) -> list[str]:
    """One stage's row of the flow table (columns :data:`FLOW_HEAD`)."""
    r, u = f.rework, f.utilisation
    return [f.stage, qty(f.items_in), qty(f.items_out), pct(f.yield_),
            pct(r.first_pass_yield if r else None), inventory_cell(f), utilisation_cell(f),
            workers_cell(f), rate(u.capacity_per_s if u else None), headroom_cell(f)]


def flow_rows(lm: LatencyMap) -> list[list[str]]:
    """The flow table's rows, one per stage in the map's order (a stage without flow: dashes)."""
    if lm.flow is None:
        return []
    out = []
    for s in lm.stages:
        f = lm.flow.of(s.stage.name)
        out.append(flow_row(f) if f is not None else [s.stage.name, *[DASH] * (len(FLOW_HEAD) - 1)])
    return out


def is_flow_check(c: Check) -> bool:
    """Whether a check is about a stage's flow (items, yield, rework, inventory, utilisation)."""
    return c.code in FLOW_CODES or (c.part or "") in FLOW_PARTS


def flow_reasons(lm: LatencyMap, stage: str) -> list[str]:
    """Why a stage's flow figures are what they are (or missing): its flow checks' messages."""
    return [c.message for c in lm.checks if c.stage == stage and is_flow_check(c)]


def flow_lines(lm: LatencyMap) -> list[str]:
    """The lines under the flow table: items completed, each branching hand-over's split,
    each stage's rework (failed and retried items and what they cost in lead time), and the
    reasons behind the dashes."""
    flow = lm.flow
    if flow is None:
        return []
    out = []
    if flow.items_completed is not None:
        out.append(f"items completed (reached the stream's end; the lead time is over them): "
                   f"{qty(flow.items_completed)}")
    for f in flow.stages:
        if len(f.handovers) > 1 or (f.handovers and f.stopped):
            split = ", ".join(f"{h.to} {qty(h.items)} ({pct(h.share)})" for h in f.handovers)
            stop = f", stopped {qty(f.stopped)}" if f.stopped is not None else ""
            out.append(f"split: {f.stage} -> {split}{stop}")
    for f in flow.stages:
        line = rework_line(f)
        if line:
            out.append(line)
    for f in flow.stages:
        out += [why if why.startswith(f.stage) else f"{f.stage}: {why}" for why in flow_reasons(lm, f.stage)]
    return out


def rework_line(f: StageFlow) -> str | None:
    """``rework: alerting %C&A 97.0% (failed 120, retried 300): 12.3s, 0.4% of lead time``;
    None when the stage has no rework figures."""
    r = f.rework
    if r is None or (r.first_pass_yield is None and r.failed is None and r.retried is None):
        return None
    if r.first_pass_yield == 1.0 and not r.failed and not r.retried:
        return None  # right first time: nothing to say
    cost = DASH if r.seconds is None else format_duration(r.seconds)
    share = "" if r.share_of_lead is None else f", {pct(r.share_of_lead)} of lead time"
    return (f"rework: {f.stage} %C&A {pct(r.first_pass_yield)} (failed {qty(r.failed)}, "
            f"retried {qty(r.retried)}): {cost}{share}")


def flow_table(lm: LatencyMap) -> str:
    """The terminal's flow block (``latmap map --flow``): an aligned table and its lines;
    a sentence when the map has no flow."""
    rows = flow_rows(lm)
    if not rows:
        return "flow: not computed (no traces and no flow metrics for this stream)\n"
    head = list(FLOW_HEAD)
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    fmt = "  ".join(f"{{:{'<' if i == 0 else '>'}{w}}}" for i, w in enumerate(widths))
    lines = ["flow:", fmt.format(*head), "  ".join("-" * w for w in widths)]
    lines += [fmt.format(*r) for r in rows]
    lines += flow_lines(lm)
    return "\n".join(lines) + "\n"


def flow_html(lm: LatencyMap) -> str:
    """report.html's flow table (``<table class="flow-table">``, a row per stage with
    ``data-stage``) and the lines under it; a dash's cell carries the stage's flow checks as
    its ``title``. Empty when the map has no flow."""
    rows = flow_rows(lm)
    if not rows:
        return ""
    out = ['<table class="flow-table"><thead><tr>', *(f"<th>{html_text(h)}</th>" for h in FLOW_HEAD),
           "</tr></thead><tbody>"]
    for s, r in zip(lm.stages, rows, strict=True):
        why = "; ".join(flow_reasons(lm, s.stage.name))
        tip = f' title="{html_text(why)}"' if why else ""
        out.append(f'<tr data-stage="{html_text(s.stage.name)}">'
                   + "".join(f"<td{tip if c.startswith(DASH) else ''}>{html_text(c)}</td>" for c in r) + "</tr>")
    out.append("</tbody></table>")
    lines = flow_lines(lm)
    if lines:
        out.append('<ul class="flow-notes">' + "".join(f"<li>{html_text(x)}</li>" for x in lines) + "</ul>")
    return "".join(out)
