"""The ``datadog`` source kind of the stream spec: sites, keys by name, limits, measurements.

Every mistake is reported as ``file:line: field: message`` and all of them at once, the same
as for Prometheus sources, so the exact lines are asserted here.
"""

from __future__ import annotations

import pytest

from mapper.core.errors import SpecError
from mapper.core.spec import TRACE_SOURCE_KINDS, loads_spec
from mapper.core.spec.datadog import DEFAULT_RELATIVE_ACCURACY, SITES

# Line 5 is ``kind: datadog``; SOURCE lines start at line 6.
TEMPLATE = """\
name: trading
sources:
  prom: {kind: prometheus, url: http://127.0.0.1:9090}
  dd:
    kind: datadog
SOURCE
stages:
  - name: alerting
    process: PROCESS
"""
GOOD_PROCESS = '{source: dd, distribution: trade.alert.latency, filter: "service:alerting"}'
ALLOWED_SOURCE_KEYS = ("kind, site, url, api_key_env, api_key_file, app_key_env, app_key_file, "
                       "relative_accuracy, spans_query, max_spans, max_wait, timeout, retries, max_response")
ALLOWED_MEASUREMENT_KEYS = "source, distribution, histogram, filter, unit"


def _text(source: str = "site: US1", process: str = GOOD_PROCESS) -> str:
    """The template with ``source`` (one key per line) and the alerting stage's process."""
    lines = "\n".join(f"    {line}" for line in source.splitlines())
    return TEMPLATE.replace("SOURCE", lines).replace("PROCESS", process)


def _process_line(source: str = "site: US1") -> int:
    """The line of the alerting stage's ``process:`` for a given source block."""
    return 5 + len(source.splitlines()) + 3


def _error(text: str) -> str:
    with pytest.raises(SpecError) as err:
        loads_spec(text, "stream.yaml")
    return str(err.value)


# --------------------------------------------------------------------------- the source


def test_a_site_name_gives_its_api_host_and_the_default_key_names() -> None:
    spec = loads_spec(_text(), "stream.yaml")
    dd = spec.sources["dd"]
    assert dd.kind == "datadog"
    assert dd.url == "https://api.datadoghq.com"
    assert dd.datadog is not None
    assert dd.datadog.site == "US1"
    assert (dd.datadog.api_key_env, dd.datadog.app_key_env) == ("DD_API_KEY", "DD_APP_KEY")
    assert (dd.datadog.api_key_file, dd.datadog.app_key_file) == (None, None)
    assert dd.datadog.relative_accuracy == DEFAULT_RELATIVE_ACCURACY
    assert dd.place == "stream.yaml:4"


@pytest.mark.parametrize(("name", "host"), sorted(SITES.items()))
def test_every_documented_site_name_maps_to_its_api_host(name: str, host: str) -> None:
    """Names as Datadog's docs write them, and lower case (people copy ``DD_SITE`` values)."""
    for written in (name, name.lower()):
        spec = loads_spec(_text(f"site: {written}"), "stream.yaml")
        dd = spec.sources["dd"]
        assert dd.url == f"https://{host}"
        assert dd.datadog is not None and dd.datadog.site == name


@pytest.mark.parametrize(("name", "host"), sorted(SITES.items()))
def test_every_site_domain_maps_to_the_same_api_host(name: str, host: str) -> None:
    """``DD_SITE`` values (``datadoghq.eu``) and the web app's host (``app.datadoghq.eu``)."""
    domain = host.removeprefix("api.")
    for written in (domain, f"app.{domain}"):
        spec = loads_spec(_text(f"site: {written}"), "stream.yaml")
        dd = spec.sources["dd"]
        assert dd.url == f"https://{host}"
        assert dd.datadog is not None and dd.datadog.site == name


@pytest.mark.parametrize(("written", "url", "site"), [
    ("datadoghq.eu", "https://api.datadoghq.eu", "EU1"),
    ("us3.datadoghq.com", "https://api.us3.datadoghq.com", "US3"),
    ("app.datadoghq.eu", "https://api.datadoghq.eu", "EU1"),
    ("eu1", "https://api.datadoghq.eu", "EU1"),
    ("datadoghq.com", "https://api.datadoghq.com", "US1"),
    ("ddog-gov.com", "https://api.ddog-gov.com", "US1-FED"),
])
def test_the_site_forms_people_write(written: str, url: str, site: str) -> None:
    dd = loads_spec(_text(f"site: {written}"), "stream.yaml").sources["dd"]
    assert dd.url == url
    assert dd.datadog is not None and dd.datadog.site == site


def test_an_explicit_url_is_kept_without_its_trailing_slash_and_without_a_site() -> None:
    """A proxy or a test server: no site is implied."""
    dd = loads_spec(_text("url: http://127.0.0.1:1234/"), "stream.yaml").sources["dd"]
    assert dd.url == "http://127.0.0.1:1234"
    assert dd.datadog is not None and dd.datadog.site is None


def test_keys_files_limits_and_accuracy_are_read() -> None:
    source = ("site: EU1\napi_key_file: /run/secrets/dd_api\napp_key_env: MY_APP_KEY\n"
              "relative_accuracy: 2%\nspans_query: env:prod\nmax_spans: 5000\nmax_wait: 5m\n"
              "timeout: 10s\nretries: 0")
    dd = loads_spec(_text(source), "stream.yaml").sources["dd"]
    assert dd.datadog is not None
    assert (dd.datadog.api_key_env, dd.datadog.api_key_file) == (None, "/run/secrets/dd_api")
    assert (dd.datadog.app_key_env, dd.datadog.app_key_file) == ("MY_APP_KEY", None)
    assert dd.datadog.relative_accuracy == pytest.approx(0.02)
    assert dd.datadog.spans_query == "env:prod"
    assert (dd.datadog.max_spans, dd.datadog.max_wait) == (5000, 300.0)
    assert (dd.timeout, dd.retries) == (10.0, 0)
    assert dd.datadog.key_names == "/run/secrets/dd_api / MY_APP_KEY"


@pytest.mark.parametrize(("written", "value"), [("1%", 0.01), ("0.005", 0.005), ("'0.5%'", 0.005)])
def test_relative_accuracy_as_a_fraction_or_a_percentage(written: str, value: float) -> None:
    dd = loads_spec(_text(f"site: US1\nrelative_accuracy: {written}"), "stream.yaml").sources["dd"]
    assert dd.datadog is not None
    assert dd.datadog.relative_accuracy == pytest.approx(value)


# --------------------------------------------------------------------------- source mistakes


@pytest.mark.parametrize(("source", "message"), [
    ("site: US9",
     "stream.yaml:6: sources.dd.site: unknown Datadog site 'US9' (known: US1, US3, US5, EU1, AP1, AP2, UK1, "
     "US1-FED, US2-FED, or their domains such as datadoghq.eu; use url: for a proxy)"),
    ("site: US1\nurl: https://proxy",
     "stream.yaml:5: sources.dd: give exactly one of site (US1, EU1, US3, US5, AP1 ...) or url"),
    ("api_key_env: DD_API_KEY",
     "stream.yaml:5: sources.dd: give exactly one of site (US1, EU1, US3, US5, AP1 ...) or url"),
    ("url: https://k:s@proxy",
     "stream.yaml:6: sources.dd.url: credentials in the URL are refused; use bearer_token_env/bearer_token_file "
     "or basic_auth (password_env/password_file) in the spec, --token-env/--token-file for Grafana"),
    ("url: ftp://proxy",
     "stream.yaml:6: sources.dd.url: not an http(s) URL without credentials: 'ftp://proxy'"),
    ("site: US1\napi_key_env: DD_API_KEY\napi_key_file: /run/secrets/dd",
     "stream.yaml:8: sources.dd: give only one of api_key_env, api_key_file"),
    ("site: US1\napp_key_env: DD_APP_KEY\napp_key_file: /run/secrets/dd",
     "stream.yaml:8: sources.dd: give only one of app_key_env, app_key_file"),
    ("site: US1\nrelative_accuracy: 2",
     "stream.yaml:7: sources.dd.relative_accuracy: must be a fraction like 0.01 or 1% "
     "(Datadog documents 1% for distributions)"),
    ("site: US1\nrelative_accuracy: -1%",
     "stream.yaml:7: sources.dd.relative_accuracy: must be a fraction like 0.01 or 1% "
     "(Datadog documents 1% for distributions)"),
    ("site: US1\nrelative_accuracy: abc",
     "stream.yaml:7: sources.dd.relative_accuracy: must be a fraction like 0.01 or 1% "
     "(Datadog documents 1% for distributions)"),
    ("site: US1\nmax_spans: 0",
     "stream.yaml:7: sources.dd.max_spans: must be a whole number >= 1"),
    ("site: US1\nmax_spans: 1.5",
     "stream.yaml:7: sources.dd.max_spans: must be a whole number >= 1"),
    ("site: US1\nmax_wait: forever",
     "stream.yaml:7: sources.dd.max_wait: not a duration: 'forever' (use e.g. 250ms, 1.5s, 5m, 24h)"),
    ("site: US1\nretries: 11",
     "stream.yaml:7: sources.dd.retries: must be a whole number from 0 to 10"),
    ("site: US1\nquery: avg:x{*}",
     f"stream.yaml:7: sources.dd.query: unknown key (allowed: {ALLOWED_SOURCE_KEYS})"),
])
def test_each_source_mistake_gets_its_line_and_message(source: str, message: str) -> None:
    assert _error(_text(source)) == message


def test_every_source_problem_is_reported_at_once() -> None:
    """One run of ``latmap check`` should show all of them, in the order of the checks."""
    source = ("site: US9\napi_key_env: K\napi_key_file: /k\nrelative_accuracy: 2\n"
              "max_spans: 0\nmax_wait: forever\nbogus: 1")
    assert _error(_text(source)).splitlines() == [
        f"stream.yaml:12: sources.dd.bogus: unknown key (allowed: {ALLOWED_SOURCE_KEYS})",
        "stream.yaml:6: sources.dd.site: unknown Datadog site 'US9' (known: US1, US3, US5, EU1, AP1, AP2, UK1, "
        "US1-FED, US2-FED, or their domains such as datadoghq.eu; use url: for a proxy)",
        "stream.yaml:8: sources.dd: give only one of api_key_env, api_key_file",
        "stream.yaml:9: sources.dd.relative_accuracy: must be a fraction like 0.01 or 1% "
        "(Datadog documents 1% for distributions)",
        "stream.yaml:10: sources.dd.max_spans: must be a whole number >= 1",
        "stream.yaml:11: sources.dd.max_wait: not a duration: 'forever' (use e.g. 250ms, 1.5s, 5m, 24h)",
    ]


def test_a_zero_timeout_is_refused_as_for_prometheus_sources() -> None:
    assert _error(_text("site: US1\ntimeout: 0")) == "stream.yaml:7: sources.dd.timeout: must be > 0"


# --------------------------------------------------------------------------- measurements


def test_a_distribution_measurement_names_metric_and_tag_filter() -> None:
    process = loads_spec(_text(), "stream.yaml").stage("alerting").process
    assert process is not None
    assert (process.source, process.kind, process.name) == ("dd", "distribution", "trade.alert.latency")
    assert process.filter == "service:alerting"
    assert (process.scale, process.unit, process.unit_given) == (1.0, "s", False)
    assert process.place == f"stream.yaml:{_process_line()}"


def test_a_histogram_measurement_with_a_unit_and_the_default_filter() -> None:
    process = loads_spec(_text(process="{source: dd, histogram: trade.alert.latency, unit: ms}"),
                         "stream.yaml").stage("alerting").process
    assert process is not None
    assert (process.kind, process.name, process.filter) == ("histogram", "trade.alert.latency", "*")
    assert (process.scale, process.unit, process.unit_given) == (0.001, "ms", True)


def test_a_tag_filter_is_stripped() -> None:
    process = loads_spec(_text(process='{source: dd, distribution: x, filter: " service:a,env:prod "}'),
                         "stream.yaml").stage("alerting").process
    assert process is not None and process.filter == "service:a,env:prod"


@pytest.mark.parametrize(("process", "message"), [
    ("{source: dd}",
     "stages[alerting].process: give exactly one of distribution, histogram (Datadog metric types)"),
    ("{source: dd, distribution: a, histogram: b}",
     "stages[alerting].process: give exactly one of distribution, histogram (Datadog metric types)"),
    ("{source: dd, distribution: x, selector: {service: a}}",
     f"stages[alerting].process.selector: unknown key (allowed: {ALLOWED_MEASUREMENT_KEYS})"),
    ("{source: dd, distribution: x, query: 'histogram_quantile(0.99, x)'}",
     f"stages[alerting].process.query: unknown key (allowed: {ALLOWED_MEASUREMENT_KEYS})"),
    ("{source: dd, distribution: 1abc}",
     "stages[alerting].process.distribution: not a Datadog metric name: '1abc'"),
    ("{source: dd, distribution: a b}",
     "stages[alerting].process.distribution: not a Datadog metric name: 'a b'"),
    ("{source: dd, histogram: trade.latency.95percentile}",
     "stages[alerting].process.histogram: name the histogram without '.95percentile': 'trade.latency'"),
    ("{source: dd, histogram: trade.latency.avg}",
     "stages[alerting].process.histogram: name the histogram without '.avg': 'trade.latency'"),
    ("{source: dd, distribution: x, filter: '{service:x}'}",
     "stages[alerting].process.filter: must not contain braces or newlines "
     "(write the tags only, e.g. service:alerting,env:prod)"),
    ("{source: dd, distribution: x, filter: '  '}",
     "stages[alerting].process.filter: is empty (use * for every series)"),
    ("{source: dd, distribution: x, unit: fortnights}",
     "stages[alerting].process.unit: unknown unit 'fortnights' (use one of ns, us, µs, ms, s, m, h, d, w)"),
])
def test_each_measurement_mistake_gets_its_line_and_message(process: str, message: str) -> None:
    assert _error(_text(process=process)) == f"stream.yaml:{_process_line()}: {message}"


def test_an_empty_filter_is_refused() -> None:
    assert _error(_text(process="{source: dd, distribution: x, filter: ''}")) == (
        f"stream.yaml:{_process_line()}: stages[alerting].process.filter: is empty (use * for every series)")


def test_a_distribution_may_end_in_a_histogram_suffix() -> None:
    """The suffix rule is for histograms' per-host series; a distribution's name is its own."""
    process = loads_spec(_text(process="{source: dd, distribution: x.avg}"), "stream.yaml").stage("alerting").process
    assert process is not None and process.name == "x.avg"


def test_prometheus_measurements_keep_their_own_rules_next_to_a_datadog_source() -> None:
    """The Datadog keys are refused from a Prometheus source, and vice versa."""
    text = _text(process="{source: prom, distribution: trade.alert.latency}")
    assert _error(text) == (
        f"stream.yaml:{_process_line()}: stages[alerting].process.distribution: unknown key "
        "(allowed: source, histogram, summary, query, selector, unit)\n"
        f"stream.yaml:{_process_line()}: stages[alerting].process: give exactly one of histogram, summary, query")


def test_every_measurement_problem_is_reported_with_the_source_ones() -> None:
    text = _text("site: US9", "{source: dd, histogram: 1x.avg, filter: '{a}', selector: {a: b}}")
    assert _error(text).splitlines() == [
        "stream.yaml:6: sources.dd.site: unknown Datadog site 'US9' (known: US1, US3, US5, EU1, AP1, AP2, UK1, "
        "US1-FED, US2-FED, or their domains such as datadoghq.eu; use url: for a proxy)",
        f"stream.yaml:9: stages[alerting].process.selector: unknown key (allowed: {ALLOWED_MEASUREMENT_KEYS})",
        "stream.yaml:9: stages[alerting].process.histogram: not a Datadog metric name: '1x.avg'",
        "stream.yaml:9: stages[alerting].process.histogram: name the histogram without '.avg': '1x'",
        "stream.yaml:9: stages[alerting].process.filter: must not contain braces or newlines "
        "(write the tags only, e.g. service:alerting,env:prod)",
    ]


# --------------------------------------------------------------------------- traces


def test_a_datadog_source_holds_traces() -> None:
    assert "datadog" in TRACE_SOURCE_KINDS
    text = _text(process=GOOD_PROCESS + "\n    traces: {source: dd, service: alerting}")
    traces = loads_spec(text, "stream.yaml").stage("alerting").traces
    assert traces is not None
    assert (traces.source, traces.service) == ("dd", "alerting")


def test_a_prometheus_source_holds_no_traces() -> None:
    text = _text(process=GOOD_PROCESS + "\n    traces: {source: prom, service: alerting}")
    assert _error(text) == (f"stream.yaml:{_process_line() + 1}: stages[alerting].traces.source: "
                            "'prom' is not a traces source (traces sources: dd)")


# --------------------------------------------------------------------------- secrets


def test_the_spec_holds_key_names_never_key_values(monkeypatch: pytest.MonkeyPatch) -> None:
    """Specs are printed, logged and attached to reports: no key value may reach them."""
    values = {"DD_API_KEY": "api-value-0a1b2c", "DD_APP_KEY": "app-value-3d4e5f",
              "MY_DD_API": "custom-api-value-6789", "MY_DD_APP": "custom-app-value-abcd"}
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    default = loads_spec(_text(), "stream.yaml")
    named = loads_spec(_text("site: US1\napi_key_env: MY_DD_API\napp_key_env: MY_DD_APP"), "stream.yaml")
    dd = named.sources["dd"].datadog
    assert dd is not None and (dd.api_key_env, dd.app_key_env) == ("MY_DD_API", "MY_DD_APP")
    for spec in (default, named):
        text = repr(spec) + str(spec)
        for value in values.values():
            assert value not in text
