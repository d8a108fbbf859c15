"""Where the tests find the project and their fixtures: everything a test reads lives in the
clone (``tests/fixtures`` holds copies of the recorded upstream answers, with PROVENANCE.md
and the Apache-2.0 licence they come under)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
GOLDEN = ROOT / "tests" / "golden"
