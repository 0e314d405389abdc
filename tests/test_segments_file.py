"""Reading segments files: TOML tables, .pql files, positions of errors in the file."""

from __future__ import annotations

import pytest

from engine import SegmentFile, parse
from engine.errors import Span
from engine.segments import SegmentFileError, dependency_cycle


def load(tmp_path, text, name="s.toml"):
    p = tmp_path / name
    p.write_text(text)
    return SegmentFile.load(p)


def test_tables_in_order_with_descriptions(tmp_path):
    f = load(
        tmp_path,
        '[segment.b]\npql = "a = 1"\ndescription = "B"\n\n[segment."a x"]\npql = \'c = 2\'\n',
    )
    assert [d.name for d in f] == ["b", "a x"]
    assert f["b"].description == "B" and f["a x"].pql == "c = 2"


@pytest.mark.parametrize(
    ("text", "message", "line"),
    [
        ("[segment.a\npql = 'x'", "not valid TOML", 1),
        ("[segment.a]\npql = 'x'\n[segment.a]\npql = 'y'", "not valid TOML", 3),
        ("title = 'x'\n[segment.a]\npql = 'a = 1'", "unexpected top-level key", None),
        ("", "no [segment.NAME] tables", None),
        ("[segment.a]\ndescription = 'x'", "needs a non-empty pql", 1),
        ("[segment.a]\npql = '   '", "needs a non-empty pql", 1),
        ("[segment.a]\npql = 'a = 1'\nqpl = 'x'", "unknown key(s) ['qpl']", 1),
        ("[segment.a]\npql = 3", "needs a non-empty pql", 1),
        ("[segment]\na = 3", "must be a table", None),
    ],
)
def test_bad_files(tmp_path, text, message, line):
    with pytest.raises(SegmentFileError) as e:
        load(tmp_path, text)
    assert message in str(e.value)
    assert e.value.line == line
    assert isinstance(e.value, ValueError)


def test_missing_and_binary_files(tmp_path):
    with pytest.raises(SegmentFileError, match="no such file"):
        SegmentFile.load(tmp_path / "nope.toml")
    (tmp_path / "b.toml").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(SegmentFileError, match="not a text file"):
        SegmentFile.load(tmp_path / "b.toml")


@pytest.mark.parametrize(
    ("value", "origin"),
    [
        ("'a = 1 and b'", (3, 8)),
        ('"a = 1 and b"', (3, 8)),
        ("'''\na = 1 and b'''", (4, 1)),
        ("'''a = 1 and b'''", (3, 10)),
        ('"a = \\"1\\" and b"', None),  # an escape: the value's text is not the file's text
    ],
)
def test_origin_maps_definition_positions_to_the_file(tmp_path, value, origin):
    f = load(tmp_path, f"# comment\n[segment.s]\npql = {value}\n")
    d = f["s"]
    assert d.origin == origin
    if origin:
        col = d.pql.index("b") + 1
        assert d.locate(Span(col - 1, col, 1, col)) == (origin[0], origin[1] + col - 1)


def test_locate_on_a_later_line(tmp_path):
    d = load(tmp_path, "[segment.s]\npql = '''\na = 1\n  and b == 2\n'''\n")["s"]
    with pytest.raises(Exception) as e:
        parse(d.pql)
    assert d.locate(e.value.span) == (4, 9)


def test_pql_file(tmp_path):
    f = load(tmp_path, "\n\n  age > 3 and\n  x = 1\n", name="adults.pql")
    assert list(f.definitions) == ["adults"]
    assert f["adults"].origin == (3, 3)


def test_dependency_cycle():
    assert (
        dependency_cycle({"a": frozenset({"b"}), "b": frozenset({"c"}), "c": frozenset()}) is None
    )
    assert dependency_cycle({"a": frozenset({"b"}), "b": frozenset({"a"})}) == ["a", "b", "a"]
    assert dependency_cycle({"a": frozenset({"a"})}) == ["a", "a"]
    assert dependency_cycle(
        {"x": frozenset({"a"}), "a": frozenset({"b"}), "b": frozenset({"a"})}
    ) == ["a", "b", "a"]
    assert dependency_cycle({"a": frozenset({"missing"})}) is None
