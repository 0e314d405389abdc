"""``pqlite stream`` over a small generated B10 store: replay from Parquet, JSON lines and
stdin, the changes against the Python API, --until, --follow, and input errors."""

from __future__ import annotations

import datetime as dt
import io
import json
import queue
import subprocess
import sys
import threading
import tomllib
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from engine.cli import main
from engine.session import Engine
from store import ProfileStore

SEGMENTS = """\
[segment.recent_buyers]
pql = 'xEvent[eventType = "purchase" and timestamp occurs < 7 days before now].count() >= 1'

[segment.busy_viewers]
pql = 'xEvent[eventType = "page_view" and timestamp occurs < 24 hours before now].count() >= 2'

[segment.us_buyers]
pql = 'country = "US" and inSegment("recent_buyers")'
"""
START = "2025-01-01T00:00:00Z"  # the generated store's events end on 2024-12-31
NEW = 90_000_001  # a profile key the store does not have


def _iso(ms: int) -> str:
    when = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(milliseconds=ms)
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _ms(text: str) -> int:
    when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return (when - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) // dt.timedelta(milliseconds=1)


def _events() -> list[dict[str, Any]]:
    """40 events over six days, in time order, at distinct instants: purchases and page views
    of stored profiles, mostly two by the same profile within hours, and of a new one."""
    rows = []
    t = _ms(START) + 3_600_000
    for i in range(40):
        profile = NEW if i % 13 == 5 else (i // 2 * 37) % 300  # mostly in pairs
        kind = "purchase" if i % 4 == 1 else "page_view"
        row = {"profile_id": profile, "timestamp": _iso(t), "eventType": kind}
        if kind == "purchase":
            row["price"] = 10.0 + i
        rows.append(row)
        t += 5 * 3_600_000 + 1_234 if i % 3 else 600_000
    return rows


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("stream")
    assert main(["generate", str(directory), "--profiles", "300"]) == 0
    segments = directory / "segments.toml"
    segments.write_text(SEGMENTS, encoding="utf-8")
    rows = _events()
    jsonl = directory / "events.jsonl"
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    table = pa.table({
        "profile_id": pa.array([r["profile_id"] for r in rows], pa.int64()),
        "timestamp": pa.array([_ms(r["timestamp"]) for r in rows], pa.int64())
        .cast(pa.timestamp("ms", tz="UTC")),
        "eventType": [r["eventType"] for r in rows],
        "price": pa.array([r.get("price") for r in rows], pa.float64()),
    })
    parquet = directory / "events.parquet"
    pq.write_table(table, parquet)
    return {"store": directory / "store", "segments": segments, "jsonl": jsonl,
            "parquet": parquet, "dir": directory}


def _stream(capsys: pytest.CaptureFixture[str], setup: dict[str, Path], events: str,
            *options: str) -> tuple[int, list[str], str]:
    code = main(["stream", str(setup["store"]), str(setup["segments"]), events, *options])
    out, err = capsys.readouterr()
    return code, out.splitlines(), err


def _stdin(monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(text.encode())))


def test_parquet_json_lines_and_stdin_give_the_same_lines(
    setup: dict[str, Path], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    until = ["--at", START, "--until", "2025-01-20T00:00:00Z"]
    code, from_parquet, err = _stream(capsys, setup, str(setup["parquet"]), *until)
    assert code == 0, err
    assert len(from_parquet) > 10
    assert "40 events" in err and "recent_buyers:" in err  # the plain summary (not a terminal)
    code, from_jsonl, _ = _stream(capsys, setup, str(setup["jsonl"]), *until, "--batch", "7")
    assert code == 0 and from_jsonl == from_parquet
    _stdin(monkeypatch, setup["jsonl"].read_text())
    code, from_stdin, _ = _stream(capsys, setup, "-", *until, "--batch", "1")
    assert code == 0 and from_stdin == from_parquet
    times = [json.loads(line)["at"] for line in from_parquet]
    assert times == sorted(times)  # written in time order


def test_the_lines_are_the_python_api_event_by_event(
    setup: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """The command ingests chunks and advances to each chunk's last event; here, one event at
    a time: advance to its instant, ingest it. Both must give the same changes."""
    code, lines, err = _stream(capsys, setup, str(setup["parquet"]), "--at", START,
                               "--until", "2025-01-20T00:00:00Z")
    assert code == 0, err
    eng = Engine(ProfileStore.open(setup["store"]))
    for name, table in tomllib.loads(SEGMENTS)["segment"].items():
        eng.define(name, table["pql"])
    s = eng.stream(START)
    expected = []
    for row in _events():
        expected += s.advance(row["timestamp"])
        expected += s.ingest(row)
    expected += s.advance("2025-01-20T00:00:00Z")
    s.close()

    def key(d: dict[str, Any]) -> tuple[str, ...]:
        return (d["at"], d["segment"], str(d["profile_id"]), d["status"])

    got = sorted((json.loads(line) for line in lines), key=key)
    assert got == sorted((c.to_dict() for c in expected), key=key)
    seen = {(d["segment"], d["status"]) for d in got}
    assert seen == {(n, s) for n in ("recent_buyers", "busy_viewers", "us_buyers")
                    for s in ("realized", "exited")}


def test_a_purchase_realizes_and_exits_exactly_seven_days_later(
    setup: dict[str, Path], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    bought = "2025-01-02T10:00:00.123Z"
    _stdin(monkeypatch, json.dumps({"profile_id": NEW, "timestamp": bought,
                                    "eventType": "purchase", "price": 9.5}) + "\n")
    out = setup["dir"] / "changes.jsonl"
    code, stdout, err = _stream(capsys, setup, "-", "--at", START, "--until",
                                "2025-01-10T10:00:00.123Z", "--out", str(out), "--json")
    assert code == 0, err
    assert stdout == []
    mine = [json.loads(line) for line in out.read_text().splitlines()]
    mine = [d for d in mine if d["profile_id"] == NEW]
    assert mine == [
        {"profile_id": NEW, "segment": "recent_buyers", "status": "realized", "at": bought},
        {"profile_id": NEW, "segment": "recent_buyers", "status": "exited",
         "at": "2025-01-09T10:00:00.123Z"},
    ]
    summary = json.loads(err)
    assert summary["events"] == 1
    assert summary["to"] == "2025-01-10T10:00:00.123Z"
    total = sum(sum(c.values()) for c in summary["segments"].values())
    assert summary["changes"] == total == len(out.read_text().splitlines())
    assert not [p for p in out.parent.iterdir() if p.name.endswith(".tmp")]


def test_profile_lines_upsert_attributes_at_the_clock(
    setup: dict[str, Path], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A ``{"$profile": ...}`` line sets attributes after the events read before it: the
    buyer moves to the US (enters us_buyers), then leaves; as the Python API does it."""
    bought = "2025-01-02T10:00:00.000Z"
    lines = [{"profile_id": NEW, "timestamp": bought, "eventType": "purchase", "price": 9.5},
             {"$profile": {"profile_id": NEW, "country": "US"}},
             {"profile_id": NEW, "timestamp": "2025-01-03T00:00:00Z", "eventType": "page_view"},
             {"$profile": {"profile_id": NEW, "country": "FR"}}]
    _stdin(monkeypatch, "".join(json.dumps(x) + "\n" for x in lines))
    code, stdout, err = _stream(capsys, setup, "-", "--at", START, "--batch", "1")
    assert code == 0, err
    mine = [json.loads(line) for line in stdout]
    mine = [(d["segment"], d["status"], d["at"]) for d in mine if d["profile_id"] == NEW]
    assert mine == [("recent_buyers", "realized", bought),
                    ("us_buyers", "realized", bought),
                    ("us_buyers", "exited", "2025-01-03T00:00:00.000Z")]
    _stdin(monkeypatch, json.dumps(lines[1]) + "\n")
    code, _, err = _stream(capsys, setup, "-")
    assert code == 2 and "line 1: a profile line before any event" in err


def test_epoch_numbers_with_a_time_unit(
    setup: dict[str, Path], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = [{**r, "timestamp": _ms(r["timestamp"]) / 1000} for r in _events()]
    _stdin(monkeypatch, "".join(json.dumps(r) + "\n" for r in rows))
    code, lines, err = _stream(capsys, setup, "-", "--time-unit", "s")
    assert code == 0, err
    code, expected, _ = _stream(capsys, setup, str(setup["jsonl"]))
    assert code == 0 and lines == expected
    assert "clock 2025-01-01T01:00:00.000Z →" in err  # starts at the first event


def test_follow_writes_changes_before_the_input_ends(setup: dict[str, Path]) -> None:
    command = [sys.executable, "-m", "engine.cli", "stream", str(setup["store"]),
               str(setup["segments"]), "-", "--follow", "--at", START]
    p = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    assert p.stdin is not None and p.stdout is not None and p.stderr is not None
    lines: queue.Queue[str] = queue.Queue()

    def read() -> None:
        for line in p.stdout or ():
            lines.put(line)

    threading.Thread(target=read, daemon=True).start()

    def send(row: dict[str, Any]) -> dict[str, Any]:
        """Write ``row``; wait for the change it causes (time-based ones may come first)."""
        assert p.stdin is not None
        p.stdin.write(json.dumps(row) + "\n")
        p.stdin.flush()
        while True:
            try:
                change = json.loads(lines.get(timeout=120))
            except queue.Empty:
                raise AssertionError("no change for the event while the input is open") from None
            if change["profile_id"] == row["profile_id"]:
                return dict(change)

    try:
        first = send({"profile_id": NEW, "timestamp": "2025-01-02T10:00:00Z",
                      "eventType": "purchase"})
        assert first == {"profile_id": NEW, "segment": "recent_buyers", "status": "realized",
                         "at": "2025-01-02T10:00:00.000Z"}
        second = send({"profile_id": NEW + 1, "timestamp": "2025-01-02T11:00:00Z",
                       "eventType": "purchase"})
        assert second["segment"] == "recent_buyers" and second["status"] == "realized"
        assert p.poll() is None  # still reading its input
        p.stdin.close()
        assert p.wait(timeout=60) == 0
        assert "2 events" in p.stderr.read()
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_log_gets_a_record_per_ingest(
    setup: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    from store.wal import WriteAheadLog

    log = setup["dir"] / "stream"
    code, _, err = _stream(capsys, setup, str(setup["jsonl"]), "--batch", "10", "--log",
                           str(log), "--sync", "none")
    assert code == 0, err
    with WriteAheadLog(log / "wal") as wal:  # the session keeps its log in DIR/wal
        ops = [json.loads(payload[:payload.index(b"\n")])["op"] for _, payload in wal.replay()]
    assert ops.count("ingest") == 4  # 40 events, 10 at a time


GOOD = '{"profile_id": 1, "timestamp": "2025-01-02T00:00:00Z", "eventType": "purchase"}'


@pytest.mark.parametrize(
    ("line", "where", "words"),
    [
        ('{"profile_id": 2, "timestamp": "2025-01-02T00:00:00Z" "eventType": "x"}',
         "line 3, column 55", "not valid JSON"),
        ('{"profile_id": 2, "timestamp": "2025-01-02T01:00:00Z", "eventType": "purchase", '
         '"price": "cheap"}', "line 3, column 'price'", "expected a number"),
        ('{"profile_id": 2, "eventType": "purchase"}', "line 3, column 'timestamp'",
         "missing"),
        ('{"profile_id": 2, "timestamp": 1735779600000, "eventType": "purchase"}',
         "line 3, column 'timestamp'", "--time-unit"),
        ('{"profile_id": 2, "timestamp": "2025-02-30", "eventType": "purchase"}',
         "line 3, column 'timestamp'", "not an ISO 8601"),
        ('{"profile_id": "two", "timestamp": "2025-01-02", "eventType": "purchase"}',
         "line 3, column 'profile_id'", "expected an integer"),
        ('{"profile_id": 2, "timestamp": "2025-01-02", "eventType": "purchase", "colour": 1}',
         "line 3, column 'colour'", "not an event field"),
        ('[2, "2025-01-02", "purchase"]', "line 3", "expected a JSON object"),
        ('{"$profile": {"profile_id": 2, "colour": "red"}}', "line 3, column 'colour'",
         "not a profile field"),
        ('{"$profile": {"country": "US"}}', "line 3, column 'profile_id'", "missing"),
        ('{"$profile": {"profile_id": 2, "age": "old"}}', "line 3, column 'age'",
         "expected an integer"),
        ('{"$profile": {"profile_id": 2}, "timestamp": "2025-01-02"}', "line 3, column "
         "'$profile'", "holds one object"),
    ],
)
def test_bad_lines_name_the_line_and_column(
    setup: dict[str, Path], capsys: pytest.CaptureFixture[str], line: str, where: str,
    words: str
) -> None:
    path = setup["dir"] / "bad.jsonl"
    path.write_text(f"{GOOD}\n\n{line}\n", encoding="utf-8")  # line 2 is blank
    out = setup["dir"] / "never.jsonl"
    code, stdout, err = _stream(capsys, setup, str(path), "--out", str(out))
    assert code == 2
    assert f"bad.jsonl, {where}" in err and words in err and "hint:" in err
    assert "Traceback" not in err
    assert stdout == [] and not out.exists()  # --out is all or nothing


def test_bad_parquet_rows_name_the_row_and_column(
    setup: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    table = pq.read_table(setup["parquet"])
    times = table.column("timestamp").to_pylist()
    times[25] = None
    bad = table.set_column(1, "timestamp", pa.array(times, table.schema.field(1).type))
    path = setup["dir"] / "bad.parquet"
    pq.write_table(bad, path)
    code, _, err = _stream(capsys, setup, str(path), "--batch", "10")
    assert code == 2
    assert "bad.parquet, row 25, column 'timestamp'" in err and "null" in err
    pq.write_table(table.append_column("colour", pa.array(["red"] * len(table))), path)
    code, _, err = _stream(capsys, setup, str(path))
    assert code == 2 and "column 'colour'" in err and "hint:" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["{jsonl}", "--follow"], "--follow reads stdin"),
        (["{dir}/events.csv"], "no such file"),
        (["{segments}"], "unknown file type"),
        (["{jsonl}", "--until", "2025-01-03T00:00:00Z"], "line 16, column 'timestamp'"),
        (["{jsonl}", "--at", "soon"], "ISO 8601"),
        (["{jsonl}", "--sync", "always"], "give --log"),
    ],
)
def test_unusable_invocations_exit_2(
    setup: dict[str, Path], capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    names = {k: str(v) for k, v in setup.items()}
    code, _, err = _stream(capsys, setup, *(a.format(**names) for a in args))
    assert code == 2
    assert message in err and "Traceback" not in err
