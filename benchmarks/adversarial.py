"""An adversarial pass against latmap: hostile input at the CLI and spec, from the servers it
reads, into the outputs it writes, and at ``latmap serve``.

Every input is a real ``latmap`` process (this checkout's code); the parts live in
``benchmarks/adversarial_pass/``:

* ``cli``: broken and hostile specs and flags, and a loopback Prometheus that misbehaves in
  every way a server can (issue 15's pass).
* ``answers``: hostile numbers, Grafana answers and local inputs; secrets echoed so that a cut
  message ends inside them, or spelled with spaces; what must load or write apart; new
  angles (Brotli, redirect loops, a 1 GB Content-Length, endless 100 Continue, 10^5 stages,
  Unicode twins, ``!!python/object``, a symlink loop as ``--out`` ...).
* ``outputs``: template injection into dashboards, provisioning, rules (``promtool check
  rules``), map.svg and discover drafts.
* ``spool``: bad files in a spool (each must be skipped and named), traces and engines that
  could hang, duplicate spans.
* ``serve``: raw sockets at ``latmap serve`` (framing, smuggling, slowloris, hostile bodies,
  shapes OTLP/JSON does not have, an HTTP/2 preface ...), and settings it must refuse at start.
* ``sigkill``: SIGKILL during ingest, and spans older than the retention: every span
  acknowledged without being refused must be in the spool afterwards.

Clean means exit 0/1/2 with a message, no traceback, no "internal error", no raw control
character on the terminal, within the time limit, plus the part's own check (the right exit
code, outputs that parse, the bad file named ...); for serve, an answer of the right class,
the server alive, no traceback in its log. Every output is searched for every configured
secret (and its base64), by any prefix of six characters, also with whitespace taken out.

Prints: inputs tried, handled cleanly, internal errors, hangs, crashes, unclean answers,
secret leaks, acknowledged spans lost; exit 1 when anything but "clean" was found.
``--quick`` runs a subset of every class (what ``tests/benchmarks/test_adversarial.py`` runs).

Usage::

    python benchmarks/adversarial.py [--quick] [--part PART] [--json PATH]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from adversarial_pass import answers, cli, outputs, serve, sigkill, spool  # noqa: E402
from adversarial_pass.common import Probe, Tally, run_probe  # noqa: E402
from adversarial_pass.hostile import hostile_server  # noqa: E402

PARTS = ("cli", "answers", "outputs", "spool", "serve", "sigkill")


def run_probes(tally: Tally, probes: list[Probe], work: Path, workers: int = 2) -> None:
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        for case in pool.map(lambda p: run_probe(p, work), probes):
            tally.add(case)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    ap.add_argument("--quick", action="store_true", help="a subset of every class (what the test runs)")
    ap.add_argument("--part", choices=(*PARTS, "all"), default="all")
    ap.add_argument("--json", help="write the figures here too")
    args = ap.parse_args(argv)
    wanted = set(PARTS) if args.part == "all" else {args.part}
    tally = Tally()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="latmap-adversarial-") as tmp, hostile_server() as url:
        work = Path(tmp)
        spool_dir = None
        if wanted & {"serve", "spool"}:
            spool_dir = serve.part_serve(tally, args.quick, work)
        probes: list[Probe] = []
        if "cli" in wanted:
            probes += cli.cli_probes(url, args.quick)
        if "answers" in wanted:
            probes += answers.answer_probes(url, args.quick)
        if "outputs" in wanted:
            probes += outputs.output_probes(url, args.quick)
        if "spool" in wanted and spool_dir is not None:
            probes += spool.spool_probes(spool_dir, url, args.quick)
        if "serve" in wanted:
            probes += serve.start_probes(args.quick)
        print(f"commands: {len(probes)} inputs", flush=True)
        run_probes(tally, probes, work)
        if "sigkill" in wanted:
            sigkill.part_sigkill(tally, args.quick, work)
    s = tally.summary()
    print(f"adversarial pass ({time.monotonic() - started:.0f} s): inputs tried {s['inputs']} {s['by_part']}, "
          f"handled cleanly {s['clean']}, internal errors {s['internal_errors']}, hangs {s['hangs']}, "
          f"crashes {s['crashes']}, unclean answers {s['unclean_output']}, secret leaks {s['secret_leaks']}, "
          f"acknowledged spans lost {s['acked_spans_lost']} of {s['acked_spans']:,}")
    if args.json:
        Path(args.json).write_text(json.dumps({**s, "cases": [asdict(c) for c in tally.cases]}, indent=2) + "\n")
    return 0 if s["clean"] == s["inputs"] and not s["acked_spans_lost"] else 1


if __name__ == "__main__":
    sys.exit(main())
