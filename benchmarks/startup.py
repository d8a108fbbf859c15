"""What a command costs before it does anything, and what `latmap map` costs on the demo.

Prints, side by side in one run (fresh processes, best of ``--repeat``, wall time and peak
RSS of each child):

* ``latmap --help`` against ``python -c "import click, yaml"`` (target: within 4x);
* a decode worker's start (importing what ``latmap serve`` runs in each worker) against
  ``python -c pass`` (targets: under 0.5 s and 80 MB);
* ``latmap map`` over the demo's spec (a day backfilled into a real Prometheus with promtool,
  12,000 traced items in a spool) against the same command at ``--before REV``, checked out
  into a temporary git worktree (target: no slower).

With ``--before REV`` every figure is also measured for the code at REV, in the same run.
Needs ``prometheus`` and ``promtool`` on PATH for the map figures (skipped, and said so, without).

    python benchmarks/startup.py --before 03c547a
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def run_child(cmd: Sequence[str], cwd: Path) -> tuple[float, int]:
    """Wall seconds and peak RSS (KiB) of one fresh process; fails loudly on a non-zero exit."""
    env = dict(os.environ, PYTHONPATH=str(cwd))
    t = time.perf_counter()
    proc = subprocess.Popen(list(cmd), cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if proc.stderr:
        proc.stderr.close()
    if proc.returncode not in (0, 1):  # 1: an objective of the demo is broken, by design
        raise SystemExit(f"{' '.join(cmd)} exited {proc.returncode}: {err[-2000:]}")
    return wall, usage.ru_maxrss


def best(cmd: Sequence[str], cwd: Path, repeat: int) -> tuple[float, int]:
    runs = [run_child(cmd, cwd) for _ in range(repeat)]
    return min(r[0] for r in runs), max(r[1] for r in runs)


@contextlib.contextmanager
def checkout(rev: str) -> Iterator[Path]:
    """The code at ``rev`` in a temporary git worktree (removed afterwards)."""
    tmp = Path(tempfile.mkdtemp(prefix="latmap-before-"))
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(tmp / "tree"), rev], check=True)
    try:
        yield tmp / "tree"
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tmp / "tree")], check=False)
        subprocess.run(["rm", "-rf", str(tmp)], check=False)


def worker_import(tree: Path) -> str:
    """The import a decode worker starts with, in that tree's layout."""
    if (tree / "collectors" / "spool" / "decode_pool.py").exists():
        return "from collectors.spool.decode_pool import worker_main"
    return "from collectors.decode_pool import worker_main"


@contextlib.contextmanager
def demo_prometheus(workdir: Path) -> Iterator[tuple[Path, float]]:
    """The demo's day in a real Prometheus and its traces in a spool; yields (spec, window end)."""
    from mapper.demo.data import STEP, openmetrics_lines, simulate
    from mapper.demo.localprom import backfill, running_prometheus
    from mapper.demo.run import demo_spec, receive_traces

    end = float(int(time.time() // STEP) * STEP)
    data = simulate(end - 86400.0 + STEP, end, seed=7)
    spool = workdir / "spool"
    receive_traces(data, spool)
    backfill(openmetrics_lines(data), workdir / "data")
    with running_prometheus(workdir / "data") as url:
        spec = workdir / "stream.yaml"
        spec.write_text(demo_spec("prometheus", url, str(spool)))
        yield spec, end


def row(name: str, fig: tuple[float, int], base: tuple[float, int] | None, base_name: str) -> str:
    ratio = f"{fig[0] / base[0]:.2f}x {base_name}" if base else ""
    return f"{name:<46} {fig[0]:>8.3f} s {fig[1] / 1024:>8.1f} MiB   {ratio}"


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--before", metavar="REV", help="also measure the code at this git revision")
    ap.add_argument("--repeat", type=int, default=5, help="runs per figure (best is shown)")
    ap.add_argument("--no-map", action="store_true", help="skip the `latmap map` figures")
    args = ap.parse_args(argv)
    py = sys.executable
    trees: list[tuple[str, Path]] = [("now", ROOT)]
    with contextlib.ExitStack() as stack:
        if args.before:
            trees.append((f"at {args.before}", stack.enter_context(checkout(args.before))))
        click_yaml = best([py, "-c", "import click, yaml"], ROOT, args.repeat)
        bare = best([py, "-c", "pass"], ROOT, args.repeat)
        print(f"{'what':<46} {'wall':>10} {'peak RSS':>12}   ratio")
        print(row('python -c "import click, yaml"', click_yaml, None, ""))
        print(row('python -c pass', bare, None, ""))
        for label, tree in trees:
            print(row(f"latmap --help ({label})", best([py, "-m", "mapper", "--help"], tree, args.repeat),
                      click_yaml, "click+yaml"))
        for label, tree in trees:
            print(row(f"decode worker start ({label})", best([py, "-c", worker_import(tree)], tree, args.repeat),
                      bare, "bare python"))
        if args.no_map:
            return 0
        from mapper.demo.localprom import binaries_available

        if not binaries_available():
            print("latmap map on the demo: skipped (no prometheus/promtool on PATH)")
            return 0
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="latmap-startup-")))
        spec, end = stack.enter_context(demo_prometheus(work))
        runs: dict[str, list[tuple[float, int]]] = {label: [] for label, _ in trees}
        for _ in range(max(2, args.repeat // 2)):  # interleaved, so load drifts hit both alike
            for i, (label, tree) in enumerate(trees):
                cmd = [py, "-m", "mapper", "map", "-c", str(spec), "--until", str(end), "--no-progress",
                       "--out", str(work / f"out{i}")]
                runs[label].append(run_child(cmd, tree))
        figures = {label: (min(r[0] for r in rs), max(r[1] for r in rs)) for label, rs in runs.items()}
        base = figures.get(trees[-1][0]) if args.before else None
        for label, fig in figures.items():
            print(row(f"latmap map, demo spec ({label})", fig, base, f"at {args.before}" if base else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
