"""The grammar ships inside the wheel and is found from a checkout (editable install) too."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from engine.grammar import grammar_path

ROOT = Path(__file__).resolve().parents[1]


def test_editable_install_reads_the_repository_grammar():
    assert grammar_path() == ROOT / "grammar" / "segment.lark"


@pytest.mark.slow
def test_built_wheel_carries_and_uses_the_grammar(tmp_path):
    pytest.importorskip("hatchling")
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
    )
    assert build.returncode == 0, build.stderr
    (wheel,) = tmp_path.glob("pqlite-*.whl")
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        z.extractall(tmp_path / "site")
    assert "engine/grammar/segment.lark" in names
    assert "store/schema.py" in names and "engine/parser.py" in names
    assert any(n.endswith("entry_points.txt") for n in names)
    assert not any(n.startswith(("tests/", "src/")) for n in names)
    # Import the unpacked wheel ahead of the editable install; hide the checkout's grammar
    # by checking where it was read from.
    probe = (
        "import engine, engine.grammar as g; "
        "print(engine.__file__); print(g.grammar_path()); "
        "print(engine.unparse(engine.parse('NOT(a=1)')))"
    )
    run = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"PYTHONPATH": str(tmp_path / "site"), "PATH": "/usr/bin:/bin"},
    )
    assert run.returncode == 0, run.stderr
    module, grammar, formatted = run.stdout.splitlines()
    assert module.startswith(str(tmp_path / "site"))
    assert grammar == str(tmp_path / "site" / "engine" / "grammar" / "segment.lark")
    assert formatted == "not (a = 1)"
