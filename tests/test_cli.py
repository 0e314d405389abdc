"""The pqlite command: check and fmt, their output, JSON and exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from engine.cli import main

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "examples" / "b10.schema.toml"
SEGMENTS = ROOT / "examples" / "segments.toml"

BAD = """\
# keep this comment
[segment.typos]
pql = 'agee > 3 and country.startswith("U")'

[segment.syntax]
description = "two lines"
pql = '''
country = "US"
  and xEvent[price > 10 and eventType == "x"].count() > 1
'''

[segment.loop_a]
pql = 'inSegment("loop_b")'

[segment.loop_b]
pql = 'inSegment("loop_a") and age > 1'

[segment.fine]
pql = 'age > 1'
"""


def run(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_check_examples(capsys):
    code, out, _ = run(capsys, "check", SEGMENTS, "--schema", SCHEMA)
    assert code == 0
    assert "10 segments: 10 ok, 0 with errors" in out
    assert "ok  us_25_40  (batch, streaming, edge)" in out
    assert "ok  recent_buyers  (batch)" in out


def test_check_without_schema_checks_syntax_and_references(capsys):
    code, out, _ = run(capsys, "check", SEGMENTS)
    assert code == 0 and "no schema given" in out


def test_check_reports_every_error_at_its_file_position(tmp_path, capsys):
    f = tmp_path / "bad.toml"
    f.write_text(BAD)
    code, out, _ = run(capsys, "check", f, "--schema", SCHEMA)
    assert code == 1
    assert f"{f}:3:8: [typos] unknown field 'agee'" in out
    assert "did you mean 'age'?" in out
    assert f"{f}:3:21: [typos] unknown function 'startswith'" in out
    assert f"{f}:9:39: [syntax] '==' is not an operator" in out
    assert "cycle: loop_a → loop_b → loop_a" in out
    assert "ok  fine" in out
    assert "5 segments: 1 ok, 4 with errors" in out


def test_check_json(tmp_path, capsys):
    f = tmp_path / "bad.toml"
    f.write_text(BAD)
    code, out, _ = run(capsys, "check", f, "--schema", SCHEMA, "--json")
    assert code == 1
    data = json.loads(out)
    assert data["ok"] is False and data["schema_checked"] is True
    by_name = {s["name"]: s for s in data["segments"]}
    typo = by_name["typos"]["errors"][0]
    assert (typo["kind"], typo["line"], typo["column"], typo["file_line"], typo["file_column"]) == (
        "name",
        1,
        1,
        3,
        8,
    )
    assert by_name["fine"]["analysis"]["methods"]["streaming"]["eligible"] is True


def test_check_quiet(capsys):
    code, out, _ = run(capsys, "check", SEGMENTS, "--schema", SCHEMA, "-q")
    assert code == 0 and out == ""


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["check", "missing.toml"], "no such file"),
        (["check", SEGMENTS, "--schema", "missing.toml"], "no such schema file"),
        (["check", SEGMENTS, "--schema", SEGMENTS], "unknown schema section"),
        (["check", SEGMENTS, "--schema", SCHEMA, "--profiles", SCHEMA], "give one of --schema, --store or --profiles"),
        (["check", SEGMENTS, "--events", SCHEMA], "needs --profiles"),
        (["check", SEGMENTS, "--profiles", "src"], "give a profile store with --store src"),
    ],
)
def test_unusable_input_exits_2_with_a_message(capsys, args, message):
    code, _, err = run(capsys, *args)
    assert code == 2
    assert message in err and "Traceback" not in err


def test_schema_from_data_files(tmp_path, capsys):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    profiles = tmp_path / "p.parquet"
    events = tmp_path / "e.parquet"
    pq.write_table(pa.table({"age": [1], "country": ["US"]}), profiles)
    pq.write_table(
        pa.table({"timestamp": pa.array([0], pa.timestamp("ms")), "eventType": ["x"]}), events
    )
    seg = tmp_path / "s.toml"
    seg.write_text("[segment.a]\npql = 'age > 3 and xEvent[eventType = \"x\"].count() > 0'\n")
    code, out, _ = run(capsys, "check", seg, "--profiles", profiles, "--events", events)
    assert code == 0, out


def test_fmt_prints_and_keeps_comments(tmp_path, capsys):
    f = tmp_path / "s.toml"
    f.write_text(
        "# top\n[segment.a]\n# about a\npql = \"NOT(age<3) AND country IN ['US']\"  # trailing\n"
    )
    code, out, _ = run(capsys, "fmt", f)
    assert code == 0
    assert "# top" in out and "# about a" in out
    assert "pql = 'not (age < 3) and country in [\"US\"]'" in out


def test_fmt_check_and_write(tmp_path, capsys):
    f = tmp_path / "s.toml"
    f.write_text("[segment.a]\npql = 'a=1'\n")
    code, out, _ = run(capsys, "fmt", f, "--check")
    assert code == 1 and "would reformat" in out
    code, _, _ = run(capsys, "fmt", f, "--write")
    assert code == 0 and "pql = 'a = 1'" in f.read_text()
    assert run(capsys, "fmt", f, "--check")[0] == 0
    assert not list(tmp_path.glob(".*tmp"))  # no temporary file left behind


def test_fmt_breaks_long_definitions_and_reparses(tmp_path, capsys):
    f = tmp_path / "s.toml"
    f.write_text(SEGMENTS.read_text())
    assert run(capsys, "fmt", f, "--write", "--width", "60")[0] == 0
    from engine import SegmentFile, parse

    original = {d.name: parse(d.pql) for d in SegmentFile.load(SEGMENTS)}
    for d in SegmentFile.load(f):
        assert parse(d.pql) == original[d.name]
        assert all(len(line) <= 100 for line in d.pql.splitlines())


def test_fmt_refuses_broken_definitions_and_leaves_the_file(tmp_path, capsys):
    f = tmp_path / "s.toml"
    text = "[segment.a]\npql = 'a = = 1'\n"
    f.write_text(text)
    code, _, err = run(capsys, "fmt", f, "--write")
    assert code == 1 and "not formatted" in err
    assert f.read_text() == text


def test_fmt_pql_file(tmp_path, capsys):
    f = tmp_path / "one.pql"
    f.write_text("a=1 AND b\n")
    assert run(capsys, "fmt", f, "--write")[0] == 0
    assert f.read_text() == "a = 1 and b\n"


def test_console_script_and_help():
    out = subprocess.run(
        [sys.executable, "-m", "engine.cli", "--help"], capture_output=True, text=True
    )
    assert out.returncode == 0 and "check" in out.stdout and "fmt" in out.stdout
    out = subprocess.run(["pqlite", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith("pqlite ")
    out = subprocess.run(["pqlite"], capture_output=True, text=True)
    assert out.returncode == 2
