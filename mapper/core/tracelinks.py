"""From a trace id to the URL that opens it in the team's trace viewer (the spec's ``links:``).

Pure string work: every value put into a URL is percent-escaped here (a trace id is data,
and may hold anything a hostile span sent), so renderers only HTML-escape the result.
``start``/``end`` are Unix seconds; the URL gets milliseconds with a minute of margin on
each side (viewers search a range; a minute covers clock skew between hosts).
"""

from __future__ import annotations

import json
from urllib.parse import quote

from mapper.core.spec.links import Links

__all__ = ["MARGIN", "trace_url", "viewer_destination"]

MARGIN = 60.0


def _ms(t: float) -> str:
    return str(int(t * 1000))


#: What RFC 3986 allows in a URI unescaped (unreserved, reserved, and '%' of an escape).
_URI_SAFE = "-._~:/?#[]@!$&'()*+,;=%"


def _uri(text: str) -> str:
    """``text`` with every character a URI may not hold (``<``, ``>``, ``"``, backtick, braces,
    non-ASCII...) percent-escaped, escapes already in it kept: a template's own text then
    cannot close an HTML attribute or a Markdown link, and the result is one valid URL."""
    return quote(text, safe=_URI_SAFE)


def trace_url(links: Links, trace_id: str, start: float | None = None, end: float | None = None) -> str:
    """The URL that opens ``trace_id`` (escaped); ``start``/``end`` narrow the viewer's range."""
    tid = quote(trace_id, safe="")
    lo = _ms(start - MARGIN) if start is not None else ""
    hi = _ms((end if end is not None else start) + MARGIN) if start is not None else ""
    if links.template is not None:
        parts = [_uri(p).replace("%7Bstart%7D", lo).replace("%7Bend%7D", hi)
                 for p in links.template.split("{trace_id}")]
        return tid.join(parts)
    base = links.url or ""
    if links.preset == "jaeger":
        return f"{base}/trace/{tid}"
    if links.preset == "datadog":
        return f"{base}/apm/trace/{tid}" + (f"?start={lo}&end={hi}" if lo else "")
    # grafana-tempo: Explore with one pane querying the Tempo data source for the trace id
    ds = links.datasource or ""
    pane = {"datasource": ds, "queries": [{"refId": "A", "datasource": {"type": "tempo", "uid": ds},
                                           "queryType": "traceql", "query": trace_id}],
            "range": {"from": lo or "now-1h", "to": hi or "now"}}
    panes = json.dumps({"latmap": pane}, separators=(",", ":"), sort_keys=True)
    return f"{base}/explore?schemaVersion=1&panes={quote(panes, safe='')}&orgId=1"


def viewer_destination(links: Links) -> tuple[str, str] | None:
    """For Grafana's ``exemplarTraceIdDestinations``: ``("datasourceUid", uid)`` for a Tempo
    data source, ``("url", template)`` with Grafana's ``${__value.raw}`` for any other
    viewer, so an exemplar dot in a panel opens its trace."""
    if links.preset == "grafana-tempo":
        return ("datasourceUid", links.datasource or "")
    if links.template is not None:
        return ("url", "${__value.raw}".join(_uri(p).replace("%7Bstart%7D", "").replace("%7Bend%7D", "")
                                              for p in links.template.split("{trace_id}")))
    return ("url", trace_url(links, "\x00").replace("%00", "${__value.raw}"))
