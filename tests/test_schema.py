"""Schema: type names, schema.toml layout, Arrow schemas (synthetic and from the real datasets)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pyarrow as pa
import pytest

from store.schema import DType, Field, Kind, Schema, SchemaError

REPO = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
B10_TOML = REPO / "examples" / "b10.schema.toml"


def arrow(*fields: pa.Field | tuple[str, pa.DataType]) -> pa.Schema:
    return pa.schema(list(fields))


def dtypes(fields: dict[str, Field]) -> dict[str, str]:
    return {name: str(f.dtype) for name, f in fields.items()}


def one_column(arrow_type: pa.DataType, name: str = "c", nullable: bool = True) -> Field:
    schema = Schema.from_arrow(arrow(pa.field(name, arrow_type, nullable=nullable)))
    assert list(schema.profile) == [name]
    return schema.profile[name]


# ---------------------------------------------------------------- DType and Kind


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("bool", DType(Kind.BOOL)),
        ("int", DType(Kind.INT)),
        ("float", DType(Kind.FLOAT)),
        ("string", DType(Kind.STRING)),
        ("timestamp", DType(Kind.TIMESTAMP)),
        ("date", DType(Kind.DATE)),
        # aliases
        ("boolean", DType(Kind.BOOL)),
        ("integer", DType(Kind.INT)),
        ("long", DType(Kind.INT)),
        ("int64", DType(Kind.INT)),
        ("double", DType(Kind.FLOAT)),
        ("float64", DType(Kind.FLOAT)),
        ("str", DType(Kind.STRING)),
        ("datetime", DType(Kind.TIMESTAMP)),
        # case and spaces
        ("  INT ", DType(Kind.INT)),
        ("String", DType(Kind.STRING)),
        # lists, with aliases inside
        ("list<int>", DType(Kind.INT, is_list=True)),
        ("list<string>", DType(Kind.STRING, is_list=True)),
        ("list< long >", DType(Kind.INT, is_list=True)),
        ("LIST<Double>", DType(Kind.FLOAT, is_list=True)),
        ("list<datetime>", DType(Kind.TIMESTAMP, is_list=True)),
        ("list<date>", DType(Kind.DATE, is_list=True)),
    ],
)
def test_dtype_parse(text: str, expected: DType) -> None:
    assert DType.parse(text) == expected


@pytest.mark.parametrize(
    "text",
    ["integr", "list<list<int>>", "list<>", "list<int", "map<string,int>", "", "struct", "decimal"],
)
def test_dtype_parse_unknown_names(text: str) -> None:
    with pytest.raises(SchemaError, match="unknown type") as info:
        DType.parse(text)
    # the message lists what is accepted
    assert "list<...>" in str(info.value)
    assert "timestamp" in str(info.value)


@pytest.mark.parametrize("value", [5, None, 1.5, ["int"]])
def test_dtype_parse_non_string_is_a_schema_error(value: object) -> None:
    with pytest.raises(SchemaError, match="string"):
        DType.parse(value)  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", list(Kind))
@pytest.mark.parametrize("is_list", [False, True])
def test_dtype_str_round_trip(kind: Kind, is_list: bool) -> None:
    t = DType(kind, is_list)
    assert DType.parse(str(t)) == t
    assert t.element == DType(kind)
    assert str(t).startswith("list<") == is_list


def test_kind_families() -> None:
    assert {k for k in Kind if k.is_numeric} == {Kind.INT, Kind.FLOAT}
    assert {k for k in Kind if k.is_temporal} == {Kind.TIMESTAMP, Kind.DATE}


# ---------------------------------------------------------------- Schema.of / from_dict / to_dict


def test_of_defaults_event_keys() -> None:
    s = Schema.of({"age": "int"}, {"timestamp": "timestamp", "eventType": "string"})
    assert s.event_time == "timestamp"
    assert s.event_type == "eventType"
    assert s.has_events
    assert s.profile["age"] == Field("age", DType(Kind.INT), nullable=True)


def test_of_without_events_has_no_event_keys() -> None:
    s = Schema.of({"age": "int", "tags": "list<string>"})
    assert not s.has_events
    assert s.event_time is None and s.event_type is None
    assert s.profile["tags"].dtype == DType(Kind.STRING, is_list=True)


def test_of_without_conventional_event_names() -> None:
    s = Schema.of({"age": "int"}, {"ts": "timestamp", "kind": "string"})
    assert s.event_time is None and s.event_type is None
    s = Schema.of(
        {"age": "int"}, {"ts": "timestamp", "kind": "string"}, event_time="ts", event_type="kind"
    )
    assert (s.event_time, s.event_type) == ("ts", "kind")


def test_of_accepts_dtypes_and_fields() -> None:
    s = Schema.of({"a": DType(Kind.INT), "b": "list<float>"})
    assert dtypes(s.profile) == {"a": "int", "b": "list<float>"}


def test_of_unknown_type_name() -> None:
    with pytest.raises(SchemaError, match="unknown type 'integr'"):
        Schema.of({"age": "integr"})


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ({"profile_key": "id"}, "profile_key 'id' is not a field"),
        ({"event_time": "when"}, "event_time 'when' is not a field"),
        ({"event_type": "kind"}, "event_type 'kind' is not a field"),
        ({"event_profile_key": "pid"}, "event_profile_key 'pid' is not a field"),
    ],
)
def test_keys_naming_missing_fields(keys: dict[str, str], message: str) -> None:
    with pytest.raises(SchemaError, match=message):
        Schema.of({"age": "int"}, {"timestamp": "timestamp"}, **keys)


def test_profile_key_must_be_a_profile_field_not_an_event_field() -> None:
    with pytest.raises(SchemaError, match="profile_key"):
        Schema.of({"age": "int"}, {"timestamp": "timestamp", "pid": "int"}, profile_key="pid")


@pytest.mark.parametrize("wrong", ["date", "int", "string", "list<timestamp>"])
def test_event_time_must_be_a_timestamp(wrong: str) -> None:
    with pytest.raises(SchemaError, match=r"event_time 'at' has type .*must be a timestamp"):
        Schema.of({"age": "int"}, {"at": wrong}, event_time="at")


def test_conventional_timestamp_field_of_another_type_is_refused() -> None:
    # `timestamp` becomes event_time by default, so it must be a timestamp.
    with pytest.raises(SchemaError, match="event_time 'timestamp' has type date"):
        Schema.of({"age": "int"}, {"timestamp": "date"})


def test_duplicate_field_names() -> None:
    # a dict or a TOML table cannot repeat a name; Arrow schemas can (see from_arrow below)
    with pytest.raises(tomllib.TOMLDecodeError):
        tomllib.loads('[profile]\nage = "int"\nage = "string"\n')
    # the same name in the profile and in the events is fine: they are different scopes
    s = Schema.of({"category": "string"}, {"timestamp": "timestamp", "category": "int"})
    assert s.profile["category"].dtype != s.events["category"].dtype


def test_from_dict_b10() -> None:
    data = tomllib.loads(B10_TOML.read_text(encoding="utf-8"))
    s = Schema.from_dict(data)
    assert dtypes(s.profile) == {
        "profile_id": "int",
        "age": "int",
        "country": "string",
        "loyalty_tier": "string",
        "lifetime_value": "float",
        "email_opt_in": "bool",
        "signup_ts": "timestamp",
    }
    assert dtypes(s.events) == {
        "profile_id": "int",
        "timestamp": "timestamp",
        "eventType": "string",
        "category": "string",
        "price": "float",
    }
    assert (s.profile_key, s.event_profile_key, s.event_time, s.event_type) == (
        "profile_id",
        "profile_id",
        "timestamp",
        "eventType",
    )


def test_from_dict_unknown_section() -> None:
    with pytest.raises(SchemaError, match=r"unknown schema section\(s\) \['event'\]"):
        Schema.from_dict({"profile": {"age": "int"}, "event": {"timestamp": "timestamp"}})


def test_from_dict_unknown_key() -> None:
    with pytest.raises(SchemaError, match=r"unknown key\(s\) \['time'\] in \[keys\]"):
        Schema.from_dict({"profile": {"age": "int"}, "keys": {"time": "timestamp"}})


def test_from_dict_unknown_type_and_non_string_type() -> None:
    with pytest.raises(SchemaError, match="unknown type 'lst<int>'"):
        Schema.from_dict({"profile": {"tags": "lst<int>"}})
    with pytest.raises(SchemaError):
        Schema.from_dict(tomllib.loads("[profile]\nage = 5\n"))


def test_from_dict_empty_profile_only() -> None:
    s = Schema.from_dict({"profile": {}})
    assert dict(s.profile) == {} and not s.has_events


@pytest.mark.parametrize(
    "schema",
    [
        Schema.of({"age": "int"}),
        Schema.of(
            {"id": "int", "tags": "list<string>", "born": "date", "home.city": "string"},
            {"timestamp": "timestamp", "eventType": "string", "items": "list<float>", "id": "int"},
            profile_key="id",
            event_profile_key="id",
        ),
        Schema.from_dict(tomllib.loads(B10_TOML.read_text(encoding="utf-8"))),
    ],
    ids=["profile-only", "rich", "b10"],
)
def test_to_dict_from_dict_round_trip(schema: Schema) -> None:
    data = schema.to_dict()
    assert set(data) == {"profile", "events", "keys"}
    assert all(
        isinstance(v, str) for section in ("profile", "events") for v in data[section].values()
    )
    again = Schema.from_dict(data)
    assert again == schema
    assert again.to_dict() == data


def test_to_dict_omits_unset_keys() -> None:
    assert Schema.of({"age": "int"}).to_dict() == {
        "profile": {"age": "int"},
        "events": {},
        "keys": {},
    }


# ------------------------------------------------------- Schema.from_arrow: supported types


SCALARS = [
    (pa.bool_(), "bool"),
    (pa.int8(), "int"),
    (pa.int16(), "int"),
    (pa.int32(), "int"),
    (pa.int64(), "int"),
    (pa.uint8(), "int"),
    (pa.uint16(), "int"),
    (pa.uint32(), "int"),
    (pa.uint64(), "int"),
    (pa.float16(), "float"),
    (pa.float32(), "float"),
    (pa.float64(), "float"),
    (pa.decimal128(12, 2), "float"),
    (pa.decimal256(40, 4), "float"),
    (pa.string(), "string"),
    (pa.large_string(), "string"),
    (pa.dictionary(pa.int32(), pa.string()), "string"),
    (pa.dictionary(pa.int8(), pa.large_string()), "string"),
    *[(pa.timestamp(unit), "timestamp") for unit in ("s", "ms", "us", "ns")],
    *[(pa.timestamp(unit, tz="UTC"), "timestamp") for unit in ("s", "ms", "us", "ns")],
    (pa.timestamp("ms", tz="Europe/Paris"), "timestamp"),
    (pa.timestamp("us", tz="+05:30"), "timestamp"),
    (pa.date32(), "date"),
    (pa.date64(), "date"),
]


@pytest.mark.parametrize(("arrow_type", "expected"), SCALARS, ids=[str(t) for t, _ in SCALARS])
def test_from_arrow_scalars(arrow_type: pa.DataType, expected: str) -> None:
    assert str(one_column(arrow_type).dtype) == expected


@pytest.mark.parametrize(("arrow_type", "expected"), SCALARS, ids=[str(t) for t, _ in SCALARS])
@pytest.mark.parametrize("make_list", [pa.list_, pa.large_list], ids=["list", "large_list"])
def test_from_arrow_lists(make_list: object, arrow_type: pa.DataType, expected: str) -> None:
    field = one_column(make_list(arrow_type))  # type: ignore[operator]
    assert field.dtype == DType(Kind(expected), is_list=True)
    assert str(field.dtype) == f"list<{expected}>"


def test_from_arrow_nullability_is_kept() -> None:
    s = Schema.from_arrow(
        arrow(
            pa.field("id", pa.int64(), nullable=False),
            pa.field("name", pa.string(), nullable=True),
            pa.field("tags", pa.list_(pa.string()), nullable=False),
        )
    )
    assert {n: f.nullable for n, f in s.profile.items()} == {
        "id": False,
        "name": True,
        "tags": False,
    }


def test_from_arrow_flattens_structs_to_dotted_paths() -> None:
    address = pa.struct(
        [
            pa.field("countryCode", pa.string()),
            pa.field("city", pa.dictionary(pa.int32(), pa.string())),
            pa.field(
                "geo", pa.struct([pa.field("lat", pa.float64()), pa.field("lon", pa.float64())])
            ),
        ]
    )
    s = Schema.from_arrow(
        arrow(
            ("id", pa.int64()),
            ("homeAddress", address),
            (
                "person",
                pa.struct(
                    [
                        ("name", pa.struct([("first", pa.string())])),
                        ("birthYear", pa.int16()),
                        ("emails", pa.list_(pa.string())),
                    ]
                ),
            ),
        )
    )
    assert dtypes(s.profile) == {
        "id": "int",
        "homeAddress.countryCode": "string",
        "homeAddress.city": "string",
        "homeAddress.geo.lat": "float",
        "homeAddress.geo.lon": "float",
        "person.name.first": "string",
        "person.birthYear": "int",
        "person.emails": "list<string>",
    }
    # names keep the Arrow column order
    assert list(s.profile)[:3] == ["id", "homeAddress.countryCode", "homeAddress.city"]


def test_from_arrow_struct_nullability() -> None:
    # a field is nullable when it or any enclosing struct is
    inner = pa.struct([pa.field("c", pa.string(), nullable=False)])
    s = Schema.from_arrow(
        arrow(
            pa.field(
                "s",
                pa.struct(
                    [
                        pa.field("a", pa.int64(), nullable=False),
                        pa.field("b", inner, nullable=False),
                        pa.field("n", pa.int64(), nullable=True),
                    ]
                ),
                nullable=False,
            ),
            pa.field("t", pa.struct([pa.field("a", pa.int64(), nullable=False)]), nullable=True),
            pa.field("u", pa.struct([pa.field("b", inner, nullable=True)]), nullable=False),
        )
    )
    assert {n: f.nullable for n, f in s.profile.items()} == {
        "s.a": False,
        "s.b.c": False,
        "s.n": True,
        "t.a": True,
        "u.b.c": True,
    }


def test_from_arrow_with_events_and_keys() -> None:
    profiles = arrow(pa.field("pid", pa.int64(), nullable=False), ("country", pa.string()))
    events = arrow(
        ("pid", pa.int64()),
        ("timestamp", pa.timestamp("us", tz="UTC")),
        ("eventType", pa.dictionary(pa.int16(), pa.string())),
        ("commerce", pa.struct([("order", pa.struct([("priceTotal", pa.decimal128(10, 2))]))])),
        ("productListItems", pa.list_(pa.string())),
    )
    s = Schema.from_arrow(profiles, events, profile_key="pid", event_profile_key="pid")
    assert s.event_time == "timestamp" and s.event_type == "eventType"
    assert (s.profile_key, s.event_profile_key) == ("pid", "pid")
    assert dtypes(s.events) == {
        "pid": "int",
        "timestamp": "timestamp",
        "eventType": "string",
        "commerce.order.priceTotal": "float",
        "productListItems": "list<string>",
    }


def test_from_arrow_explicit_event_keys() -> None:
    events = arrow(("at", pa.timestamp("ms")), ("kind", pa.string()), ("day", pa.date32()))
    s = Schema.from_arrow(arrow(("id", pa.int64())), events, event_time="at", event_type="kind")
    assert (s.event_time, s.event_type) == ("at", "kind")
    with pytest.raises(SchemaError, match="event_time 'day' has type date"):
        Schema.from_arrow(arrow(("id", pa.int64())), events, event_time="day")
    with pytest.raises(SchemaError, match="event_time 'missing' is not a field"):
        Schema.from_arrow(arrow(("id", pa.int64())), events, event_time="missing")
    with pytest.raises(SchemaError, match="profile_key 'nope' is not a field"):
        Schema.from_arrow(arrow(("id", pa.int64())), events, profile_key="nope")


def test_from_arrow_duplicate_names() -> None:
    with pytest.raises(SchemaError, match="field 'a' is defined twice"):
        Schema.from_arrow(arrow(("a", pa.int64()), ("a", pa.string())))
    # a flattened struct field colliding with a column whose name has a dot
    with pytest.raises(SchemaError, match=r"field 'home\.city' is defined twice"):
        Schema.from_arrow(
            arrow(("home.city", pa.string()), ("home", pa.struct([("city", pa.string())])))
        )


# ----------------------------------------------------- Schema.from_arrow: unsupported types


UNSUPPORTED = [
    ("binary", pa.binary(), "cast binary columns to string"),
    ("large_binary", pa.large_binary(), "cast binary columns to string"),
    ("dict_of_binary", pa.dictionary(pa.int32(), pa.binary()), "cast binary columns to string"),
    ("map", pa.map_(pa.string(), pa.int64()), "flatten the map"),
    ("duration", pa.duration("ms"), "store durations as integers"),
    ("time64", pa.time64("us"), "store times of day as integers"),
    ("time32", pa.time32("s"), "store times of day as integers"),
    ("list_of_list", pa.list_(pa.list_(pa.int64())), "lists of lists are not supported"),
    (
        "large_list_of_large_list",
        pa.large_list(pa.large_list(pa.int64())),
        "lists of lists are not supported",
    ),
    ("null", pa.null(), "holds only nulls"),
    ("list_of_null", pa.list_(pa.null()), "holds only nulls"),
    (
        "list_of_struct",
        pa.list_(pa.struct([("sku", pa.string()), ("qty", pa.int32())])),
        "lists of structs are not supported",
    ),
    (
        "large_list_of_struct",
        pa.large_list(pa.struct([("sku", pa.string())])),
        "lists of structs are not supported",
    ),
    ("list_of_map", pa.list_(pa.map_(pa.string(), pa.int8())), "flatten the map"),
    ("fixed_size_list", pa.list_(pa.int64(), 3), "cast fixed-size lists"),
]


@pytest.mark.parametrize(
    ("name", "arrow_type", "hint"), UNSUPPORTED, ids=[u[0] for u in UNSUPPORTED]
)
def test_from_arrow_unsupported_types(name: str, arrow_type: pa.DataType, hint: str) -> None:
    with pytest.raises(SchemaError) as info:
        Schema.from_arrow(arrow(("ok", pa.int64()), (name, arrow_type)))
    message = str(info.value)
    assert f"column {name!r}" in message
    assert f"Arrow type {arrow_type}" in message  # the column's own type, not an element's
    assert "cannot evaluate" in message
    assert hint in message


def test_from_arrow_unsupported_inside_struct_names_the_dotted_path() -> None:
    s = arrow(("profile", pa.struct([("raw", pa.struct([("blob", pa.binary())]))])))
    with pytest.raises(SchemaError, match=r"column 'profile\.raw\.blob' .*binary"):
        Schema.from_arrow(s)


def test_from_arrow_unsupported_event_column() -> None:
    events = arrow(
        ("timestamp", pa.timestamp("ms")), ("payload", pa.map_(pa.string(), pa.string()))
    )
    with pytest.raises(SchemaError, match="column 'payload'"):
        Schema.from_arrow(arrow(("id", pa.int64())), events)


def test_schema_error_is_a_value_error() -> None:
    assert issubclass(SchemaError, ValueError)


# ---------------------------------------------------------------- the real datasets


def _data(relative: str) -> Path:
    path = DATA / relative
    if not path.exists():
        pytest.skip(
            f"shared dataset {path} is not present (expected beside the repo at ../shared/data)"
        )
    return path


def test_complete_journey_transactions() -> None:
    import pyarrow.parquet as pq

    arrow_schema = pq.read_schema(_data("complete_journey/transactions.parquet"))
    s = Schema.from_arrow(
        arrow(("household_id", pa.int64())),
        arrow_schema,
        event_time="transaction_timestamp",
        profile_key="household_id",
        event_profile_key="household_id",
    )
    assert dtypes(s.events) == {
        "household_id": "int",
        "store_id": "int",
        "basket_id": "int",
        "product_id": "int",
        "quantity": "int",
        "sales_value": "float",
        "retail_disc": "float",
        "coupon_disc": "float",
        "coupon_match_disc": "float",
        "week": "int",
        "transaction_timestamp": "timestamp",
    }
    assert s.event_time == "transaction_timestamp"
    assert s.event_type is None  # no eventType column in this table


def test_complete_journey_demographics() -> None:
    import pyarrow.parquet as pq

    arrow_schema = pq.read_schema(_data("complete_journey/demographics.parquet"))
    s = Schema.from_arrow(arrow_schema, profile_key="household_id")
    types = dtypes(s.profile)
    assert types["household_id"] == "int"
    # age and income are bands such as "45-54" and "35-49K": strings, as are the other columns
    assert set(types) == {
        "household_id",
        "age",
        "income",
        "home_ownership",
        "marital_status",
        "household_size",
        "household_comp",
        "kids_count",
    }
    assert all(t == "string" for n, t in types.items() if n != "household_id")
    assert all(f.nullable for f in s.profile.values())
    assert not s.has_events


def test_online_retail_csv() -> None:
    import pyarrow.csv as pcsv

    reader = pcsv.open_csv(_data("online_retail/online_retail.csv.gz"))
    try:
        arrow_schema = reader.schema
    finally:
        reader.close()
    s = Schema.from_arrow(
        arrow(("CustomerID", pa.float64())), arrow_schema, event_time="InvoiceDate"
    )
    assert dtypes(s.events) == {
        "InvoiceNo": "string",  # "C536379" for cancellations, so not a number
        "StockCode": "string",
        "Description": "string",
        "Quantity": "int",
        "InvoiceDate": "timestamp",  # "2010-12-01 08:26:00" is inferred as a timestamp
        "UnitPrice": "float",
        "CustomerID": "float",  # written as 17850.0 in the file
        "Country": "string",
    }
    assert s.event_time == "InvoiceDate"
    round_trip = Schema.from_dict(s.to_dict())
    assert dtypes(round_trip.events) == dtypes(s.events)
