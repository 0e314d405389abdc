"""``pqlite stitch`` and ``pqlite identity show`` (engine.cli_identity)."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from engine.cli import main
from store import ProfileStore
from store.identities import IdentityGraph

TS = pa.timestamp("ms", tz="UTC")
PLAN = """
[identity]
namespaces = [{ name = "crm_id", unique = true }, "email", { name = "ecid", tier = "cookie" }]

[merge_policy]
attributes = "timestamp"

[[profiles]]
name = "crm"
path = "crm.parquet"
identities = { customer = "crm_id", mail = "email" }

[events]
name = "web"
path = "web.parquet"
identities = { customer = "crm_id", cookie = "ecid" }
time = "timestamp"
type = "eventType"
"""


@pytest.fixture
def plan(tmp_path: Path) -> Path:
    pq.write_table(pa.table({"customer": ["C1", "C2"], "mail": ["a@x.io", None],
                             "tier": ["gold", "silver"]}), tmp_path / "crm.parquet")
    pq.write_table(pa.table({
        "cookie": ["K1", "K1", "K1", "K9", "K2"],
        "customer": [None, None, "C1", "C2", "C1"],
        "timestamp": pa.array([1_000, 2_000, 3_000, 4_000, 5_000], pa.int64()).cast(TS),
        "eventType": ["view", "view", "purchase", "purchase", "view"],
    }), tmp_path / "web.parquet")
    (tmp_path / "plan.toml").write_text(PLAN)
    return tmp_path / "plan.toml"


def test_stitch_then_show(plan: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
                          ) -> None:
    out = tmp_path / "people"
    assert main(["stitch", str(plan), "--out", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["people"] == 2 and summary["links"] == 4 and summary["refused"] == 0
    store = ProfileStore.open(out / "store")
    assert sorted(store.keys.to_pylist()) == ["crm_id:C1", "crm_id:C2"]
    assert len(IdentityGraph.load(out / "identities.json")) == 2
    # Found by any of its identities; the anonymous views are the customer's.
    assert main(["identity", "show", str(out), "ecid:K1", "--json"]) == 0
    person = json.loads(capsys.readouterr().out)
    assert person["person"] == "crm_id:C1"
    assert set(person["identities"]) == {"crm_id:C1", "email:a@x.io", "ecid:K1", "ecid:K2"}
    assert [link["source"] for link in person["links"]] == ["crm:row 0", "web:row 2",
                                                             "web:row 4"]
    assert person["attributes"]["tier"] == {"value": "gold", "dataset": "crm",
                                            "identity": "crm_id:C1", "updated": 0}
    assert main(["identity", "show", str(out), "crm_id:C1"]) == 0
    shown = capsys.readouterr().out
    assert "crm_id:C1" in shown and "web:row 2" in shown and "gold" in shown
    assert "1970-01-01T00:00:03.000Z" in shown


def test_errors_say_what_and_where(plan: Path, tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "people"
    assert main(["stitch", str(plan), "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["identity", "show", str(out), "ecid:nobody"]) == 2
    assert "no person has the identity 'ecid:nobody'" in capsys.readouterr().err
    assert main(["identity", "show", str(tmp_path), "crm_id:C1"]) == 2
    assert "has no people.jsonl" in capsys.readouterr().err
    plan.write_text(PLAN.replace('{ name = "ecid", tier = "cookie" }',
                                 '{ name = "ecid", tier = "browser" }'))
    assert main(["stitch", str(plan), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "plan.toml [identity]: namespaces[2]: tier 'browser' is not one of" in err
    plan.write_text(PLAN + "\n[extra]\n")
    assert main(["stitch", str(plan), "--out", str(out)]) == 2
    assert "unknown table [extra]" in capsys.readouterr().err
