"""OTLP/JSON trace payloads (the protobuf JSON mapping, plus the legacy shapes found in real
dumps: Tempo's ``batches``, ``instrumentationLibrarySpans``, Jaeger's ``{"result": ...}``) into
span columns. Shares its column building with :mod:`collectors.otlp.protobuf` (:mod:`collectors.otlp.columns`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

from collectors.otlp.attributes import resource_texts
from collectors.otlp.codec import Decoded, NotTraces, PayloadError, gc_paused
from collectors.otlp.columns import ATTR_INDEX, TAIL_POLICY_KEY, RawColumns, resolve_service_name

#: A JSON escape of a UTF-16 surrogate (``\ud800``-``\udfff``): only then can a parsed string
#: hold a lone surrogate, so only then is the document checked for one.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def decode_json(body: bytes | str, request: bool = False) -> Decoded:
    """Decode OTLP/JSON traces, and the shapes real dumps have.

    Accepted: ``{"resourceSpans": [...]}`` (ExportTraceServiceRequest / TracesData) with ids in
    hex of any case or base64, int64s as numbers or strings, enums as ints or names
    (``"SPAN_KIND_SERVER"``); Tempo's ``{"batches": [...]}`` with ``instrumentationLibrarySpans``;
    Jaeger api_v3's ``{"result": ...}``; ``{"trace": ...}``; a JSON list of such documents.
    Raises :class:`PayloadError` for text that is not JSON ("invalid JSON: ... at line L column C")
    and for JSON of another shape (metrics, logs, an error response). Peak memory is about eight
    times the body (Python's JSON objects).

    ``request``: the body of an OTLP/HTTP export, which the spec defines as one
    ExportTraceServiceRequest object: a top-level list or another wrapper is refused, and so is
    ``resourceSpans`` that is not a list (an empty object would otherwise be an empty export,
    acknowledged). A string holding a lone surrogate (``"\\ud800"``: valid JSON, not text) is
    refused like invalid UTF-8 in protobuf: nothing downstream could write it.
    """
    with gc_paused():
        try:
            doc = json.loads(body)
        except json.JSONDecodeError as err:
            raise PayloadError(f"invalid JSON: {err.msg} at line {err.lineno} column {err.colno}") from err
        except UnicodeDecodeError as err:
            raise PayloadError(f"invalid JSON: not UTF-8 text (byte {err.start})") from err
        except RecursionError as err:
            raise PayloadError("invalid JSON: nested too deeply") from err
        if request:
            _check_request(doc)
        if _SURROGATE_ESCAPE.search(body.encode("utf-8", "surrogatepass") if isinstance(body, str) else body):
            _check_text(doc)
        raw = _collect_document(doc)
        del doc  # the parsed document is the biggest thing alive: free it before building columns
        return raw.finish()


def _check_request(doc: Any) -> None:
    if not isinstance(doc, dict):
        raise PayloadError(f"an OTLP/HTTP export is one JSON object (ExportTraceServiceRequest), "
                           f"got {type(doc).__name__}")
    spans = doc.get("resourceSpans")
    if spans is not None and not isinstance(spans, list):
        raise PayloadError(f"resourceSpans: expected a list, got {type(spans).__name__}")


def _check_text(doc: Any) -> None:
    try:
        json.dumps(doc, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as err:
        raise PayloadError("invalid JSON text: a string holds a lone UTF-16 surrogate (\\ud800-\\udfff), "
                           "which is not Unicode text") from err


def _resource_spans_of(doc: Any, out: list[Any]) -> None:
    """Append the ResourceSpans objects of one document (any accepted shape) to ``out``."""
    if isinstance(doc, list):
        for item in doc:
            _resource_spans_of(item, out)
        return
    if not isinstance(doc, dict):
        raise PayloadError(f"expected a JSON object with resourceSpans, got {type(doc).__name__}")
    for key in ("resourceSpans", "batches"):
        if key in doc:
            spans = [] if doc[key] is None else doc[key]
            if not isinstance(spans, list):
                raise PayloadError(f"{key}: expected a list, got {type(spans).__name__}")
            out.extend(spans)
            return
    for wrapper in ("result", "trace"):
        if isinstance(doc.get(wrapper), (dict, list)):
            _resource_spans_of(doc[wrapper], out)
            return
    if "error" in doc:
        error = doc["error"]
        message = error.get("message", error) if isinstance(error, dict) else error
        raise PayloadError(f"the document is an error response, not traces: {message}")
    for other in ("resourceMetrics", "resourceLogs", "resourceProfiles"):
        if other in doc:
            raise NotTraces(f"the document holds {other}, not resourceSpans")
    # No known key: an empty request (unknown fields are ignored, as OTLP/JSON requires).


def decode_document(doc: Any) -> Decoded:
    return _collect_document(doc).finish()


def _collect_document(doc: Any) -> RawColumns:
    resource_spans: list[Any] = []
    _resource_spans_of(doc, resource_spans)
    raw = RawColumns(text_ids=True)
    place = [0, -1, 0]  # resource index, scope index, first span of the scope: for errors
    try:
        for i, rs in enumerate(resource_spans):
            resource_start = len(raw.trace)
            place[:] = [i, -1, resource_start]
            service, missing = _json_service(rs.get("resource"))
            raw.resources.append(resource_texts((rs.get("resource") or {}).get("attributes") or (), from_json=True))
            for j, ss in enumerate(rs.get("scopeSpans") or rs.get("instrumentationLibrarySpans") or ()):
                place[1:] = [j, len(raw.trace)]
                _copy_json_spans(ss.get("spans") or (), raw)
                raw.policies.append((_scope_policy(ss.get("scope")), len(raw.trace) - place[2]))
            raw.services.append((service, missing, len(raw.trace) - resource_start))
    except (AttributeError, TypeError, KeyError, IndexError) as err:
        where = f"resourceSpans[{place[0]}]"
        if place[1] >= 0:
            where += f".scopeSpans[{place[1]}].spans[{len(raw.trace) - place[2]}]"
        raise PayloadError(f"{where}: not an OTLP object of the expected shape ({err})") from err
    return raw


def _scope_policy(scope: Any) -> str | None:
    """The scope's ``tailsampling.policy`` (the Collector's tail sampling), None when absent."""
    for kv in (scope or {}).get("attributes") or ():
        if kv.get("key") == TAIL_POLICY_KEY:
            value = (kv.get("value") or {}).get("stringValue")
            return value if isinstance(value, str) and value else None
    return None


def _json_service(resource: Any) -> tuple[str, bool]:
    found = executable = None
    for kv in (resource or {}).get("attributes") or ():
        key = kv.get("key")
        if key in ("service.name", "process.executable.name"):
            value = (kv.get("value") or {}).get("stringValue")
            if isinstance(value, str):
                if key == "service.name":
                    found = value
                else:
                    executable = value
    return resolve_service_name(found, executable)


def _copy_json_spans(spans: Iterable[Any], raw: RawColumns) -> None:
    trace, span, parent = raw.trace.append, raw.span.append, raw.parent.append
    link_trace, link_span = raw.link_trace.append, raw.link_span.append
    links_row, links_trace, links_span = raw.links_row.append, raw.links_trace.append, raw.links_span.append
    start, end, name = raw.start.append, raw.end.append, raw.name.append
    kind, status = raw.kind.append, raw.status.append
    trace_state, flags = raw.trace_state.append, raw.flags.append
    exceptions, keep_raw = raw.exceptions.append, raw.raw_attributes.append
    a0, a1, a2, a3 = (values.append for values in raw.attrs)
    index = ATTR_INDEX
    zero8, zero16 = "0" * 16, "0" * 32
    dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
    for sp in spans:
        get = sp.get
        trace(get("traceId") or "")
        span(get("spanId") or "")
        parent(get("parentSpanId") or zero8)
        start(get("startTimeUnixNano") or 0)  # `or`: JSON null means the default, as absent does
        end(get("endTimeUnixNano") or 0)
        kind(get("kind") or 0)
        st = get("status")
        status((st.get("code") or 0) if st else 0)
        name(get("name") or "")
        ts = get("traceState")
        trace_state(ts if isinstance(ts, str) else None)
        flags(get("flags") or 0)
        events = get("events")
        exceptions(sum(isinstance(e, dict) and e.get("name") == "exception" for e in events)
                   if isinstance(events, list) else 0)
        links = get("links")
        if links:
            first = links[0]
            link_trace(first.get("traceId") or zero16)
            link_span(first.get("spanId") or zero8)
            row = len(raw.trace) - 1
            for link in links:
                links_row(row)
                links_trace(link.get("traceId") or zero16)
                links_span(link.get("spanId") or zero8)
        else:
            link_trace(zero16)
            link_span(zero8)
        attributes = get("attributes")
        keep_raw(dumps(attributes) if isinstance(attributes, list) and attributes else None)
        if attributes:
            found: list[Any] = [None, None, None, None]
            for kv in attributes:
                col = index.get(kv.get("key"))
                if col is not None:
                    found[col] = (kv.get("value") or {}).get("stringValue")
            a0(found[0])
            a1(found[1])
            a2(found[2])
            a3(found[3])
        else:
            a0(None)
            a1(None)
            a2(None)
            a3(None)
