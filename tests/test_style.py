"""The tree passes ruff with the rules pyproject.toml selects (pyflakes, syntax and statement checks, lines of at
most 120 characters), so that an unused import, an undefined name or an overlong line fails CI."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_ruff_reports_nothing():
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "pdeop", "tests", "benchmarks",
                             "train.py"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
