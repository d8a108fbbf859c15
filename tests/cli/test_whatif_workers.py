"""``latmap whatif --workers STAGE=N``: a FIFO queue in front of two workers, simulated with
Poisson arrivals and exponential process times (an M/M/2 queue, where the model is exact),
written as an OTLP file by the real OTel SDK and mapped by the CLI. The model at today's
workers lands near the measured wait; at one worker the queue grows without bound."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from mapper.analysis.queueing import erlang_c, mgc, parse_workers
from mapper.cli import cli, main
from mapper.core.errors import UsageError

T0 = 1_790_000_000
SECONDS = 200
LAM, MEAN_S, WORKERS = 15.0, 0.08, 2
SPEC = """\
name: quotes
sources:
  spans: {{kind: traces, path: {path}}}
stages:
  - {{name: ticks, traces: {{source: spans, service: marketdata}}}}
  - {{name: notify, traces: {{source: spans, service: notifier}}{workers}}}
"""


def simulate(seed: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Arrivals, starts, ends and worker of each item through a FIFO queue of WORKERS."""
    rng = np.random.default_rng(seed)
    arrive = np.cumsum(rng.exponential(1 / LAM, int(LAM * SECONDS * 1.2)))
    arrive = arrive[arrive < SECONDS - 5]
    work = rng.exponential(MEAN_S, arrive.size)
    free = np.zeros(WORKERS)
    start, who = np.empty(arrive.size), np.empty(arrive.size, np.int64)
    for i, t in enumerate(arrive):
        w = int(np.argmin(free))
        start[i], who[i] = max(t, free[w]), w
        free[w] = start[i] + work[i]
    return arrive, start, start + work, who


@pytest.fixture(scope="module")
def spans(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    """The simulated items as one OTLP protobuf file made by the SDK; and their waits."""
    arrive, start, end, who = simulate()
    memory = InMemorySpanExporter()

    def tracer(service: str, instance: str) -> trace.Tracer:
        p = TracerProvider(resource=Resource.create({"service.name": service, "service.instance.id": instance}))
        p.add_span_processor(SimpleSpanProcessor(memory))
        return p.get_tracer("test")

    md = tracer("marketdata", "md-0")
    workers = [tracer("notifier", f"notifier-{w}") for w in range(WORKERS)]
    ns = 1_000_000_000
    for a, s, e, w in zip(arrive, start, end, who, strict=True):
        t_a = T0 * ns + int(a * ns)
        pub = md.start_span("ticks publish", Context(), SpanKind.PRODUCER, start_time=t_a - 1_000_000)
        pub.end(t_a)
        workers[w].start_span("ticks process", trace.set_span_in_context(pub), SpanKind.CONSUMER,
                              start_time=T0 * ns + int(s * ns)).end(T0 * ns + int(e * ns))
    d = tmp_path_factory.mktemp("spans")
    (d / "spans.pb").write_bytes(encode_spans(memory.get_finished_spans()).SerializeToString())
    return d, start - arrive


def _run(tmp: Path, spans_dir: Path, *args: str, workers: str = "") -> tuple[int, str]:
    spec = tmp / "stream.yaml"
    spec.write_text(SPEC.format(path=spans_dir, workers=workers))
    r = CliRunner().invoke(cli, ["whatif", "-c", str(spec), "--window", f"{SECONDS}s", "--until", str(T0 + SECONDS),
                                 *args])
    return r.exit_code, r.output


def _error(tmp: Path, spans_dir: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    """What ``latmap`` (its entry point: errors as one line on stderr) answers."""
    spec = tmp / "stream.yaml"
    spec.write_text(SPEC.format(path=spans_dir, workers=""))
    code = main(["whatif", "-c", str(spec), "--window", f"{SECONDS}s", "--until", str(T0 + SECONDS), *args])
    return code, capsys.readouterr().err


def test_the_model_at_todays_workers_is_checked_against_the_measured_wait(
        tmp_path: Path, spans: tuple[Path, np.ndarray]) -> None:
    spans_dir, waits = spans
    code, out = _run(tmp_path, spans_dir, "--workers", "notify=3", "--workers", "notify=1", "--format", "json")
    assert code == 0, out
    three, one = json.loads(out)["workers"]
    assert three["model"].startswith("M/G/c") and three["inputs"]["workers_today"] == WORKERS
    assert three["inputs"]["workers_today_source"] == "service.instance.id"
    assert three["inputs"]["arrival_per_s"] == pytest.approx(waits.size / SECONDS)
    assert three["inputs"]["process_scv"] == pytest.approx(1.0, abs=0.15)  # exponential
    assert three["measured"]["wait_mean_s"] == pytest.approx(waits.mean(), rel=1e-6)
    # M/M/2 is what was simulated: the model at today's workers lands near the measured wait
    assert three["model_vs_measured"]["wait_mean"] == pytest.approx(1.0, abs=0.2)
    assert three["model_vs_measured"]["wait_p99"] == pytest.approx(1.0, abs=0.25)
    assert three["asked"]["utilisation"] == pytest.approx(three["today"]["utilisation"] * 2 / 3)
    assert three["asked"]["wait_mean_s"] < three["today"]["wait_mean_s"] / 4
    assert one["asked"]["utilisation"] > 1 and one["asked"]["wait_mean_s"] is None
    assert one["asked"]["note"] == "the queue grows without bound"


def test_the_table_says_it_is_a_model_and_the_spec_sets_the_workers(tmp_path: Path,
                                                                   spans: tuple[Path, np.ndarray]) -> None:
    code, out = _run(tmp_path, spans[0], "--workers", "notify=1", workers=", workers: 2")
    assert code == 0, out
    assert "a model, not a measurement: M/G/c" in out and "today 2 workers (spec)" in out
    assert "model at today's workers / measured: mean" in out
    assert "the queue grows without bound" in out


def test_bad_workers_are_one_line_errors(tmp_path: Path, spans: tuple[Path, np.ndarray],
                                        capsys: pytest.CaptureFixture[str]) -> None:
    for arg, msg in (("notify=0", "N must be a whole number >= 1"), ("nope=2", "STAGE one of"),
                     ("notify", "use STAGE=N")):
        code, err = _error(tmp_path, spans[0], capsys, "--workers", arg)
        assert code != 0 and msg in err and len(err.strip().splitlines()) == 1, err
    code, err = _error(tmp_path, spans[0], capsys, "--workers", "notify=2", "--hop", "notify", "--scale", "0.5")
    assert code != 0 and "on its own" in err
    with pytest.raises(UsageError):
        parse_workers("notify=1.5", ["notify"])


def test_erlang_c_and_the_mm1_case() -> None:
    assert erlang_c(2, 1.6) == pytest.approx(0.7111, abs=1e-4)
    m = mgc(1, 8.0, 0.1, 1.0)  # M/M/1 at rho 0.8: P(wait) = rho, Wq = rho / (mu - lam)
    assert (m.p_wait, m.wait_mean) == pytest.approx((0.8, 0.8 / 2.0))
    assert m.wait_p99 == pytest.approx(math.log(0.8 / 0.01) / 2.0)  # P(W > t) = rho exp(-(mu - lam) t)
    assert mgc(1, 8.0, 0.1, 0.0).wait_mean == pytest.approx(0.2)  # M/D/1: half of M/M/1 (Pollaczek-Khinchine)
