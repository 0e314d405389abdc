"""``pqlite export`` and ``pqlite activate``; and docs/activation.md's worked example on
The Complete Journey (skipped without the shared data)."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from engine.cli import main
from store.datasets import data_dir
from tests.activation_fixtures import SEGMENTS, store

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "activation"
JOURNEY = data_dir() / "complete_journey"

ACTIVATION = """
state = "state"

[governance.labels]
country = ["C4"]

[[governance.policies]]
name = "no ads on geography"
deny = ["ad_targeting"]
when = "C4"

[destination.crm]
kind = "parquet"
path = "out/crm"
segments = ["recent", "big"]
marketing_action = "email_targeting"
attributes = ["country"]
mode = "incremental"
consent = {{ purpose = "email", field = "email_opt_in" }}

[destination.web]
kind = "jsonl"
path = "out/web.jsonl"
segments = ["recent"]
marketing_action = "onsite_personalization"
batch_seconds = 0.01

[destination.ads]
kind = "csv"
path = "out/ads"
segments = [{ads}]
marketing_action = "ad_targeting"
"""


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cli")
    store(300).save(root / "store")
    lines = [f"[segment.{name}]\npql = '{text}'\n" for name, text in SEGMENTS.items()]
    (root / "segments.toml").write_text("\n".join(lines), encoding="utf-8")
    return root


def activation(root: Path, ads: str = '"recent"') -> Path:
    path = root / "activation.toml"
    path.write_text(ACTIVATION.format(ads=ads), encoding="utf-8")
    return path


def run(root: Path, *args: str) -> int:
    return main([args[0], str(root / "store"), str(root / "segments.toml"),
                 str(activation(root)), *args[1:]])


def test_export_writes_manifests_and_reruns_idempotently(
        setup: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path
    for name in ("store", "segments.toml"):
        (root / name).symlink_to(setup / name)
    assert run(root, "export", "--at", "2025-01-01T00:00:00Z") == 0
    out = capsys.readouterr().out
    assert "crm: incremental parquet files, email_targeting" in out and "a full backfill" in out
    manifest = json.loads((root / "out/crm/manifest_20250101T000000Z.json").read_text())
    assert manifest["rows"] == sum(pq.read_metadata(root / "out/crm" / f["name"]).num_rows
                                   for f in manifest["files"])
    assert run(root, "export", "--at", "2025-01-01T00:00:00Z") == 0
    assert "re-ran the last export" in capsys.readouterr().out
    assert run(root, "export", "--at", "2025-01-01T12:00:00Z", "-d", "crm") == 0
    assert "crm: not due (daily, next due at 2025-01-02T00:00:00.000Z)" in capsys.readouterr().out
    assert run(root, "export", "--at", "2025-01-03T00:00:00Z", "--json") == 0
    reports = json.loads(capsys.readouterr().out)["exports"]
    crm = next(r for r in reports if r["destination"] == "crm")
    assert crm["status"] == "written" and crm["mode"] == "incremental"
    counts = crm["segments"]["recent"]
    assert counts["rows"] == counts["realized"] + counts["exited"] and not counts["backfill"]


def test_export_refuses_what_a_policy_denies_with_the_lineage(
        setup: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("store", "segments.toml"):
        (tmp_path / name).symlink_to(setup / name)
    args = [str(tmp_path / "store"), str(tmp_path / "segments.toml")]
    assert main(["export", *args, str(activation(tmp_path, '"recent", "us_recent"')),
                 "--at", "2025-01-01T00:00:00Z"]) == 3
    err = capsys.readouterr().err
    assert "nothing was sent" in err and "policy 'no ads on geography'" in err
    assert ("C4 ← attribute 'country' (read by segment 'us_recent')" in err
            and "to destination 'ads'" in err)
    assert not (tmp_path / "out").exists()  # refused before anything was written
    assert main(["export", *args, str(activation(tmp_path)), "--at", "2025-01-01T00:00:00Z",
                 "-d", "nope"]) == 2
    assert "no destination 'nope'" in capsys.readouterr().err
    assert main(["export", *args, str(activation(tmp_path)), "--at", "2025-01-01T00:00:00Z",
                 "-d", "web"]) == 2
    assert "streaming destinations are sent by pqlite activate" in capsys.readouterr().err


def test_activate_delivers_resumes_and_reports(
        setup: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("store", "segments.toml"):
        (tmp_path / name).symlink_to(setup / name)
    events = tmp_path / "events.jsonl"
    events.write_text("".join(
        json.dumps({"id": i, "timestamp": f"2025-01-01T0{i % 9}:00:00Z", "eventType": "purchase",
                    "price": 20.0}) + "\n" for i in range(0, 300, 7)), encoding="utf-8")
    code = run(tmp_path, "activate", str(events), "--at", "2025-01-01T00:00:00Z",
               "--until", "2025-01-06T00:00:00Z", "--json")
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    web = summary["destinations"]["web"]
    assert web["delivered"] == web["enqueued"] > 0 and web["pending"] == 0
    assert summary["backfilled"]["web"] > 0 and not summary["resumed"]
    lines = [json.loads(line) for line in (tmp_path / "out/web.jsonl").read_text().splitlines()]
    assert len(lines) == web["delivered"]
    assert {r["status"] for r in lines} == {"existing", "realized", "exited"}
    # Again, without events: the activation resumes; nothing was pending.
    assert run(tmp_path, "activate", "--json") == 0
    again = json.loads(capsys.readouterr().out)
    assert again["resumed"] and again["destinations"]["web"]["enqueued"] == 0
    # A destination that is down: records stay in the outbox, exit 4.
    text = activation(tmp_path).read_text().replace(
        'kind = "jsonl"\npath = "out/web.jsonl"', 'kind = "webhook"\nurl = "http://127.0.0.1:9/x"')
    down = tmp_path / "down.toml"
    down.write_text(text.replace('state = "state"', 'state = "state2"'), encoding="utf-8")
    code = main(["activate", str(tmp_path / "store"), str(tmp_path / "segments.toml"), str(down),
                 "-d", "web", "--at", "2025-01-01T00:00:00Z", "--drain", "0.3"])
    assert code == 4
    assert "not delivered yet" in capsys.readouterr().err


@pytest.mark.skipif(not (JOURNEY / "transactions.parquet").is_file(),
                    reason=f"no {JOURNEY} (set $PQLITE_DATA)")
def test_the_worked_example_on_the_complete_journey(
        tmp_path_factory: pytest.TempPathFactory, capsys: pytest.CaptureFixture[str]) -> None:
    """docs/activation.md's commands: the exported rows are the set differences of the
    memberships, for the households that consented."""
    from engine.segments import SegmentFile
    from engine.session import Engine
    from store import ProfileStore

    work = tmp_path_factory.mktemp("journey")
    assert main(["import", str(work / "cj"), "--profiles", str(JOURNEY / "demographics.parquet"),
                 "--events", str(JOURNEY / "transactions.parquet"), "--profile-id",
                 "household_id", "--event-time", "transaction_timestamp"]) == 0
    example = work / "activation"
    shutil.copytree(EXAMPLE, example, ignore=shutil.ignore_patterns("out"))
    args = [str(work / "cj"), str(example / "segments.toml")]
    assert main(["export", *args, str(example / "ads-affluent.toml"),
                 "--at", "2017-12-01T00:00:00Z"]) == 3
    assert "C4 ← attribute 'income' (read by segment 'affluent')" in capsys.readouterr().err
    for day in ("2017-12-01", "2017-12-08"):
        assert main(["export", *args, str(example / "activation.toml"),
                     "--at", f"{day}T00:00:00Z"]) == 0
    st = ProfileStore.open(work / "cj")
    eng = Engine(st, threads=1)
    for d in SegmentFile.load(example / "segments.toml"):
        eng.define(d.name, d.pql)
    before, after = eng.run("2017-12-01T00:00:00Z"), eng.run("2017-12-08T00:00:00Z")
    with open(example / "consents.csv", encoding="utf-8") as f:
        email = {int(r["household_id"]) for r in csv.DictReader(f) if r["email"] == "y"}

    def members(result: Any, name: str) -> set[int]:
        return set(result.ids(name).to_pylist()) & email

    out = example / "out" / "email_crm"
    for segment in ("family_spenders", "lapsing"):
        rows = pq.read_table(out / f"{segment}_20171208T000000Z_000.parquet").to_pylist()
        realized = {r["household_id"] for r in rows if r["status"] == "realized"}
        exited = {r["household_id"] for r in rows if r["status"] == "exited"}
        assert realized == members(after, segment) - members(before, segment)
        assert exited == members(before, segment) - members(after, segment)
        assert realized or exited
    code = main(["activate", *args, str(example / "activation.toml"),
                 str(example / "events.jsonl"), "--at", "2018-01-02T00:00:00Z",
                 "--until", "2018-01-12T00:00:00Z"])
    assert code == 0
    lines = (example / "out" / "web" / "changes.jsonl").read_text().splitlines()
    assert len(lines) > 1000 and all(json.loads(line)["destination"] == "web" for line in lines)


def test_activate_reads_a_consent_withdrawal_from_the_stream(
        setup: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A ``{"$profile": ...}`` line that withdraws consent sends the profile's exit to the
    destination of that purpose, at once (reason "consent")."""
    from store import ProfileStore

    st = ProfileStore.open(setup / "store")
    profiles = st.to_arrow()[0].to_pylist()
    who = next(p["id"] for p in profiles if p["email_opt_in"] is True)
    config = tmp_path / "mail.toml"
    config.write_text("""
state = "state"

[destination.mail]
kind = "jsonl"
path = "out/mail.jsonl"
segments = ["recent"]
marketing_action = "email_targeting"
consent = { purpose = "email", field = "email_opt_in" }
batch_seconds = 0.01
backfill = false
""", encoding="utf-8")
    events = tmp_path / "events.jsonl"
    events.write_text("".join(json.dumps(x) + "\n" for x in [
        {"id": who, "timestamp": "2025-01-01T01:00:00Z", "eventType": "purchase", "price": 5.0},
        {"$profile": {"id": who, "email_opt_in": False}},
        {"id": who, "timestamp": "2025-01-01T02:00:00Z", "eventType": "purchase", "price": 5.0},
    ]), encoding="utf-8")
    code = main(["activate", str(setup / "store"), str(setup / "segments.toml"), str(config),
                 str(events), "--at", "2025-01-01T00:00:00Z", "--batch", "1", "--json"])
    assert code == 0, capsys.readouterr().err
    sent = [json.loads(line) for line in (tmp_path / "out/mail.jsonl").read_text().splitlines()]
    mine = [(r["segment"], r["status"], r.get("reason")) for r in sent]
    assert mine == [("recent", "realized", None), ("recent", "exited", "consent")]
