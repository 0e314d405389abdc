"""``pqlite stitch`` and ``pqlite identity show``: people from identities, and why.

``pqlite stitch PLAN.toml --out DIR`` reads the datasets a plan names
(`store.stitching.StitchPlan`), puts every record through the identity graph and writes the
people (``DIR/store``), the graph's log (``DIR/identities.json``) and an explanation per
person (``DIR/people.jsonl``). ``pqlite identity show DIR KEY`` prints one person, found by
its key or by any of its identities (``ecid:K1``): its identities, the links that joined
them with their times and sources, refused links, and each attribute's winning fragment.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

__all__ = ["add_commands"]


def add_commands(sub: Any) -> None:
    st = sub.add_parser(
        "stitch",
        help="build a store of people from records of identities",
        description="Read the datasets a stitch plan names (TOML: [identity], [merge_policy], "
        "[merge_policies.NAME], [[profiles]], [events]; see docs/identity.md), link their "
        "identities into people and write DIR/store, DIR/identities.json and "
        "DIR/people.jsonl; the people under each other merge policy go to "
        "DIR/policies/NAME/.",
    )
    st.add_argument("plan", type=Path, help="stitch plan (TOML)")
    st.add_argument("--out", type=Path, required=True, help="output directory")
    st.add_argument("--json", action="store_true", help="print a JSON summary")
    st.set_defaults(run=_stitch)

    ident = sub.add_parser("identity", help="inspect the people of a stitched directory")
    isub = ident.add_subparsers(title="commands", metavar="COMMAND")
    show = isub.add_parser(
        "show",
        help="one person: identities, links, refusals, attribute sources",
        description="Print the person KEY (its key, e.g. crm_id:42, or any identity of it, "
        "e.g. ecid:K1) of a directory written by pqlite stitch.",
    )
    show.add_argument("directory", type=Path, help="directory written by pqlite stitch")
    show.add_argument("key", help="person key or identity, as namespace:value")
    show.add_argument("--json", action="store_true", help="print the person as JSON")
    show.set_defaults(run=_show)
    ident.set_defaults(run=lambda args: (ident.print_help(), 2)[1])


def _stitch(args: argparse.Namespace) -> int:
    from store.stitching import StitchPlan

    started = time.perf_counter()
    everyone = StitchPlan.read(args.plan).stitch_all()
    people = everyone.pop("default")
    people.save(args.out)
    for name, other in everyone.items():  # the other merge policies, a directory each
        other.save(Path(args.out) / "policies" / name)
    keys = people.store.keys.to_pylist()
    summary = {
        "people": len(keys), "links": len(people.graph.log),
        "refused": len(people.graph.refusals), "removed": len(people.graph.removals),
        "dropped_events": len(people.dropped_events),
        "other_policies": ", ".join(everyone) or "none",
        "seconds": round(time.perf_counter() - started, 3), "out": str(args.out),
    }
    if args.json:
        print(json.dumps(summary))
        return 0
    console = Console(highlight=False)
    table = Table(title=f"stitched {args.plan}", show_header=False)
    for name, value in summary.items():
        table.add_row(name.replace("_", " "), f"{value:,}" if isinstance(value, int) else str(value))
    console.print(table)
    return 0


def _show(args: argparse.Namespace) -> int:
    from engine.cli import UsageError

    path = args.directory / "people.jsonl"
    if not path.is_file():
        raise UsageError(f"{args.directory} has no people.jsonl: write it with pqlite stitch")
    found = None
    with path.open() as f:
        for line in f:
            entry = json.loads(line)
            if entry["person"] == args.key or args.key in entry["identities"]:
                found = entry
                break
    if found is None:
        raise UsageError(f"no person has the identity {args.key!r} in {args.directory} "
                         "(write it as namespace:value, e.g. crm_id:42)")
    if args.json:
        print(json.dumps(found))
        return 0
    console = Console(highlight=False)
    console.print(f"[bold]{found['person']}[/bold]: {len(found['identities'])} identities: "
                  + ", ".join(found["identities"]))
    links = Table(title="links", show_lines=False)
    for col in ("at", "source", "identities"):
        links.add_column(col)
    for link in found["links"]:
        links.add_row(_instant(link["at"]), link["source"], ", ".join(link["identities"]))
    console.print(links if found["links"] else "no links: a single identity")
    for r in found["refusals"]:
        console.print(f"[yellow]refused[/yellow] at {_instant(r['at'])} from {r['source']}: "
                      f"{r['reason']}")
    attrs = Table(title="attributes (merge policy winners)")
    for col in ("attribute", "value", "dataset", "identity", "updated"):
        attrs.add_column(col)
    for name, a in found["attributes"].items():
        attrs.add_row(name, str(a["value"]), a["dataset"], a["identity"], _instant(a["updated"]))
    console.print(attrs if found["attributes"] else "no attributes")
    return 0


def _instant(ms: int) -> str:
    from store.times import iso_ms

    return iso_ms(ms)
