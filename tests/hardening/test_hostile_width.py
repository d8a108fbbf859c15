"""Issue 25: ``latmap buckets --width`` refuses what no histogram can meet, in one line.

A width of 1e-300 made a geometric grid of ratio 1.0 (a ZeroDivisionError), 1e-9 a grid of
billions of bounds (memory and time without end); the advised bounds keep four significant
digits, so nothing finer than 0.1% can be met anyway.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mapper.analysis.buckets import MIN_WIDTH
from mapper.cli import main
from mapper.cli.buckets import share_of
from mapper.core.errors import UsageError
from tests.cli.test_budgets_cli import WINDOW, spec  # noqa: F401  (the module-scoped fixture)


@pytest.mark.parametrize(("width", "says"), [
    ("1e-300", "below 0.1%"), ("0.0009", "below 0.1%"), ("0.09%", "below 0.1%"), ("1e-300%", "below 0.1%"),
    ("0", "between 0% and 100%"), ("-5%", "between 0% and 100%"), ("-0.05", "between 0% and 100%"),
    ("NaN", "between 0% and 100%"), ("nan%", "between 0% and 100%"), ("inf", "between 0% and 100%"),
    ("1e300", "between 0% and 100%"), ("100%", "between 0% and 100%"), ("1", "between 0% and 100%"),
    ("5%%", "not a share"), ("", "not a share"), ("five", "not a share"), ("%", "not a share"),
])
def test_a_width_no_histogram_can_meet_is_a_usage_error(width: str, says: str) -> None:
    with pytest.raises(UsageError, match=r"^--width: ") as err:
        share_of(width)
    assert says in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize(("width", "share"), [("0.1%", 0.001), ("5%", 0.05), (" 0.05 ", 0.05), ("99%", 0.99)])
def test_a_sane_width_is_read(width: str, share: float) -> None:
    assert share_of(width) == pytest.approx(share)


def test_the_cli_exits_2_with_one_line_before_reading_anything(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["buckets", "-c", str(tmp_path / "missing.yaml"), "--width", "1e-300"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--width: '1e-300' is below 0.1%" in err


def test_the_narrowest_width_gives_advice_in_bounded_time(spec: Path,  # noqa: F811
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["buckets", "-c", str(spec), *WINDOW, "--width", f"{MIN_WIDTH:.1%}", "--format", "json"]) == 0
    advice = json.loads(capsys.readouterr().out)
    assert advice and all(len(a["bounds"]) < 20_000 for a in advice)
