"""Lint and types are part of the suite: ruff and mypy, configured in pyproject.toml."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True)


def test_ruff():
    assert shutil.which("ruff") or _run("ruff", "--version").returncode == 0
    out = _run("ruff", "check", "src", "tests", "benches")
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.slow
def test_mypy():
    out = _run("mypy")
    assert out.returncode == 0, out.stdout + out.stderr


def test_store_never_imports_engine():
    offenders = [
        str(p.relative_to(ROOT))
        for p in (ROOT / "src" / "store").rglob("*.py")
        if "import engine" in p.read_text() or "from engine" in p.read_text()
    ]
    assert not offenders, f"store is the lower layer; these import engine: {offenders}"
