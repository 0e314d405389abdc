"""Destinations and their configuration: where memberships go, and under which rules.

A destination has a kind (batch files: ``parquet``, ``csv``; streaming: ``jsonl``,
``webhook``, or ``callable`` from Python), the segments mapped to it, the identity
namespaces and profile attributes it receives, the marketing action it performs (which
governance policies judge), its cadence, and optionally a consent rule: the purpose it
serves and where each profile's consent for that purpose is read.

An activation file (TOML) declares destinations and the governance that applies to them::

    state = "activation-state"          # incremental baselines, outboxes (default .pqlite-activation)

    [destination.email_weekly]
    kind = "parquet"
    path = "exports/email"
    segments = ["family_spenders"]
    marketing_action = "email_targeting"
    identities = ["household_id"]
    attributes = ["income"]
    cadence = "weekly"
    mode = "incremental"
    consent = { purpose = "email", field = "email", file = "consents.csv" }

    [governance.labels]
    income = ["C4"]

    [[governance.policies]]
    name = "no ads on income"
    deny = ["ad_targeting"]
    when = "C4"

`ActivationConfig.load` reads it; every error names the file and the key, and says how to
fix it (`ConfigError`). Relative paths are relative to the file. `ActivationConfig.validate`
checks the destinations against a store's schema and the defined segments.
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.errors import EngineError
from engine.governance import (
    CORE_LABELS,
    Dataset,
    Governance,
    LabelError,
    Policy,
    parse_labels,
)

__all__ = [
    "BATCH_KINDS",
    "STREAM_KINDS",
    "ActivationConfig",
    "Cadence",
    "ConfigError",
    "Consent",
    "Destination",
]

BATCH_KINDS = ("parquet", "csv")
STREAM_KINDS = ("jsonl", "webhook", "callable")
MODES = ("full", "incremental")
DEFAULT_STATE = ".pqlite-activation"
# What a consent field holds when the profile agreed: true, or text such as "y" (any case).
DEFAULT_GRANTED = (True, "y", "yes", "true", "1", "opt-in", "in")

_HOUR = 3_600_000
_UNITS = {"minute": 60_000, "hour": _HOUR, "day": 24 * _HOUR, "week": 7 * 24 * _HOUR}


class ConfigError(EngineError, ValueError):
    """An activation configuration that cannot be used: the message names the file and key."""


def _hint(message: str, hint: str | None) -> str:
    return f"{message}\n  hint: {hint}" if hint else message


def _close(name: str, pool: Iterable[str]) -> str | None:
    from engine.checker import did_you_mean

    return did_you_mean(name, pool)


# ---------------------------------------------------------------- cadence


@dataclass(frozen=True)
class Cadence:
    """How often a destination receives data: ``once``, ``hourly``, ``daily``, ``weekly``,
    ``every N minutes|hours|days|weeks``, or ``streaming`` (as changes happen)."""

    text: str
    interval_ms: int | None  # None: once; 0: streaming

    @classmethod
    def parse(cls, text: str) -> Cadence:
        spec = " ".join(str(text).lower().split())
        fixed = {"once": None, "hourly": _HOUR, "daily": 24 * _HOUR, "weekly": 7 * 24 * _HOUR,
                 "streaming": 0}
        if spec in fixed:
            return cls(spec, fixed[spec])
        m = re.fullmatch(r"every (\d+) (minute|hour|day|week)s?", spec)
        if m and int(m.group(1)) > 0:
            return cls(spec, int(m.group(1)) * _UNITS[m.group(2)])
        raise ValueError(f"unknown cadence {text!r}: write once, hourly, daily, weekly, "
                         "every N minutes/hours/days/weeks, or streaming")

    def due(self, last_ms: int | None, at_ms: int) -> bool:
        """Whether an export at ``at_ms`` is due, the last one having been at ``last_ms``."""
        if last_ms is None:
            return True
        if self.interval_ms is None:
            return False
        return at_ms >= last_ms + self.interval_ms

    def next_after(self, last_ms: int) -> int | None:
        return None if self.interval_ms is None else last_ms + self.interval_ms


# ---------------------------------------------------------------- destinations


@dataclass(frozen=True)
class Consent:
    """Profiles are exported to a destination only if their consent for ``purpose`` is given:
    the value of ``field`` is one of ``granted`` (text compared without case). The field is a
    profile attribute of the store, or, with ``file``, a column of a Parquet or CSV table
    keyed by ``key`` (default: the store's profile key; profiles absent from it have not
    consented). Only a store attribute can change in a stream (an attribute upsert)."""

    purpose: str
    field: str
    granted: tuple[Any, ...] = DEFAULT_GRANTED
    file: Path | None = None
    key: str | None = None

    def accepts(self, value: Any) -> bool:
        if value is None:
            return False
        for g in self.granted:
            if isinstance(g, str) and isinstance(value, str):
                if value.strip().lower() == g.lower():
                    return True
            elif isinstance(g, bool) or isinstance(value, bool):
                if value is g:
                    return True
            elif value == g:
                return True
        return False


@dataclass(frozen=True)
class Destination:
    """Where memberships go; see the module docstring and docs/activation.md."""

    name: str
    kind: str
    segments: tuple[str, ...]
    marketing_action: str
    identities: tuple[str, ...] = ()  # identity namespaces: the profile key, or attributes
    attributes: tuple[str, ...] = ()
    cadence: str = ""  # default: "daily" for files, "streaming" otherwise
    consent: Consent | None = None
    description: str = ""
    # batch files
    path: Path | None = None
    mode: str = "full"
    split_rows: int = 5_000_000
    include_exited: bool = False  # full files: also the exits still within the retention
    retention_days: float = 30.0
    # streaming
    url: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    sink: Callable[[list[dict[str, Any]]], Any] | None = None
    batch_size: int = 100
    batch_seconds: float = 1.0
    retry_seconds: float = 0.5
    retry_max_seconds: float = 60.0
    max_attempts: int | None = None  # None: retry transient failures for ever
    timeout_seconds: float = 10.0
    backfill: bool = True  # streaming: send the current members when delivery starts

    def __post_init__(self) -> None:
        if self.kind not in (*BATCH_KINDS, *STREAM_KINDS):
            raise ValueError(f"destination {self.name!r}: unknown kind {self.kind!r}; use one "
                             f"of {', '.join((*BATCH_KINDS, *STREAM_KINDS))}")
        if not self.cadence:
            object.__setattr__(self, "cadence", "daily" if self.is_batch else "streaming")
        object.__setattr__(self, "segments", tuple(self.segments))
        object.__setattr__(self, "identities", tuple(self.identities))
        object.__setattr__(self, "attributes", tuple(self.attributes))
        if self.path is not None:
            object.__setattr__(self, "path", Path(self.path))
        problem = self._problem()
        if problem:
            raise ValueError(f"destination {self.name!r}: {problem}")

    def _problem(self) -> str | None:
        if not self.segments:
            return "no segments mapped: give segments = [...]"
        if not self.marketing_action:
            return "no marketing_action, e.g. email_targeting, ad_targeting"
        if self.mode not in MODES:
            return f"mode {self.mode!r}: use full or incremental"
        try:
            cadence = Cadence.parse(self.cadence)
        except ValueError as e:
            return str(e)
        if self.is_batch and cadence.interval_ms == 0:
            return f"a {self.kind} destination is exported in batches: its cadence cannot be streaming"
        if not self.is_batch and cadence.interval_ms != 0:
            return f"a {self.kind} destination receives changes as they happen: its cadence is streaming"
        if self.is_batch and self.path is None:
            return "a file destination needs path = DIRECTORY"
        if self.kind == "jsonl" and self.path is None:
            return "a jsonl destination needs path = FILE"
        if self.kind == "webhook" and not self.url:
            return "a webhook destination needs url = \"http://...\""
        if self.kind == "callable" and self.sink is None:
            return "a callable destination needs sink=a function taking a list of changes"
        if self.split_rows < 1 or self.batch_size < 1:
            return "split_rows and batch_size must be at least 1"
        if self.retention_days <= 0 or self.batch_seconds < 0 or self.timeout_seconds <= 0:
            return "retention_days and timeout_seconds must be positive, batch_seconds not negative"
        if self.max_attempts is not None and self.max_attempts < 1:
            return "max_attempts must be at least 1 (leave it out to retry for ever)"
        return None

    @property
    def is_batch(self) -> bool:
        return self.kind in BATCH_KINDS

    @property
    def schedule(self) -> Cadence:
        return Cadence.parse(self.cadence)

    @property
    def retention_ms(self) -> int:
        return int(self.retention_days * 24 * _HOUR)

    def mapping_fingerprint(self) -> str:
        """A digest of what decides the content of what is sent (not where nor when)."""
        what = {"kind": self.kind, "segments": self.segments, "identities": self.identities,
                "attributes": self.attributes, "mode": self.mode,
                "split_rows": self.split_rows, "include_exited": self.include_exited,
                "retention_days": self.retention_days,
                "consent": None if self.consent is None else [
                    self.consent.purpose, self.consent.field, [repr(g) for g in self.consent.granted],
                    str(self.consent.file), self.consent.key]}
        return hashlib.blake2b(json.dumps(what, sort_keys=True).encode(),
                               digest_size=8).hexdigest()


# ---------------------------------------------------------------- the file


@dataclass(frozen=True)
class ActivationConfig:
    """The destinations and the governance of an activation file."""

    destinations: Mapping[str, Destination]
    governance: Governance = field(default_factory=Governance)
    state: Path | None = None
    path: Path | None = None

    @classmethod
    def load(cls, path: str | Path) -> ActivationConfig:
        p = Path(path)
        data = _read_toml(p, "activation file")
        return cls.from_dict(data, base=p.parent, where=str(p))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, base: Path = Path("."),
                  where: str = "activation") -> ActivationConfig:
        _known(data, {"state", "destination", "governance"}, where, "")
        governance = Governance()
        g = data.get("governance")
        if isinstance(g, str):
            gpath = base / g
            gdata = _read_toml(gpath, "governance file")
            governance = _governance(gdata.get("governance", gdata), str(gpath), "")
        elif g is not None:
            governance = _governance(_table(g, where, "governance"), where, "governance.")
        tables = _table(data.get("destination", {}), where, "destination")
        if not tables:
            raise ConfigError(_hint(f"{where}: no destinations",
                                    "declare one as [destination.NAME] with kind, path or url, "
                                    "segments and marketing_action"))
        destinations = {name: _destination(name, _table(t, where, f"destination.{name}"),
                                           base, where)
                        for name, t in tables.items()}
        state = data.get("state")
        if state is not None and not isinstance(state, str):
            raise ConfigError(f"{where}: state: write a directory path as a string")
        return cls(destinations, governance, None if state is None else base / state,
                   None if where == "activation" else Path(where))

    def state_dir(self, override: Path | None = None) -> Path:
        """Where incremental baselines and delivery state live."""
        if override is not None:
            return override
        if self.state is not None:
            return self.state
        return (self.path.parent if self.path is not None else Path(".")) / DEFAULT_STATE

    def select(self, names: Sequence[str] | None, *, batch: bool | None = None) -> list[Destination]:
        """The destinations called ``names`` (all when None), of the batch or streaming kinds
        when ``batch`` says; an unknown name or a destination of the other kind is an error."""
        where = str(self.path) if self.path else "activation"
        if not names:
            return [d for d in self.destinations.values() if batch is None or d.is_batch == batch]
        out = []
        for name in names:
            if name not in self.destinations:
                hint = _close(name, self.destinations) or (
                    "its destinations are " + ", ".join(self.destinations))
                raise ConfigError(_hint(f"{where}: no destination {name!r}", hint))
            d = self.destinations[name]
            if batch is not None and d.is_batch != batch:
                which = "pqlite export" if d.is_batch else "pqlite activate"
                raise ConfigError(_hint(
                    f"{where}: destination {name!r} is a {d.kind} destination",
                    f"{'file' if d.is_batch else 'streaming'} destinations are sent by {which}"))
            out.append(d)
        return out

    def validate(self, schema: Any, segments: Iterable[str],
                 destinations: Iterable[Destination] | None = None) -> None:
        """Check ``destinations`` (default: all) against a store's schema and the defined
        segments: mapped segments exist, identities and attributes are profile fields, the
        consent field can be read."""
        where = str(self.path) if self.path else "activation"
        names = list(segments)
        for d in self.destinations.values() if destinations is None else destinations:
            at = f"{where}: [destination.{d.name}]"
            for s in d.segments:
                if s not in names:
                    raise ConfigError(_hint(f"{at} segments: no segment {s!r} is defined",
                                            _close(s, names) or "define it in the segments file"))
            for key, items in (("identities", d.identities), ("attributes", d.attributes)):
                for n in items:
                    if n != schema.profile_key and n not in schema.profile:
                        raise ConfigError(_hint(
                            f"{at} {key}: {n!r} is not a profile attribute of the store",
                            _close(n, [schema.profile_key, *schema.profile])
                            or f"its attributes are {', '.join(schema.profile)}"))
                    if n in schema.profile and schema.profile[n].dtype.is_list:
                        raise ConfigError(f"{at} {key}: {n!r} is a list; lists cannot be "
                                          "exported (as in Adobe's destinations)")
            c = d.consent
            if c is not None and c.file is None and c.field not in schema.profile:
                raise ConfigError(_hint(
                    f"{at} consent.field: {c.field!r} is not a profile attribute of the store",
                    _close(c.field, schema.profile)
                    or "give the attribute holding the consent, or file = a table of consents"))


def _read_toml(path: Path, what: str) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such {what}") from None
    except IsADirectoryError:
        raise ConfigError(f"{path} is a directory: give the {what}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None


def _table(value: Any, where: str, key: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: {key}: expected a table ([{key}]), got {_kind(value)}")
    return value


def _kind(value: Any) -> str:
    return {bool: "a boolean", int: "a number", float: "a number", str: "a string",
            list: "a list", dict: "a table"}.get(type(value), type(value).__name__)


def _known(table: Mapping[str, Any], allowed: Iterable[str], where: str, prefix: str) -> None:
    pool = list(allowed)
    for key in table:
        if key not in pool:
            raise ConfigError(_hint(f"{where}: {prefix}{key}: unknown key",
                                    _close(key, pool) or f"the keys are {', '.join(sorted(pool))}"))


def _strings(value: Any, where: str, key: str, *, single: bool = False) -> tuple[str, ...]:
    if single and isinstance(value, str):
        return (value,)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where}: {key}: expected a list of strings, got {_kind(value)}")
    return tuple(value)


_COMMON = {"kind", "segments", "marketing_action", "identities", "attributes", "cadence",
           "consent", "description"}
_BATCH = {"path", "mode", "split_rows", "include_exited", "retention_days"}
_STREAM = {"batch_size", "batch_seconds", "retry_seconds", "retry_max_seconds",
           "max_attempts", "backfill"}
_BY_KIND = {"parquet": _BATCH, "csv": _BATCH, "jsonl": _STREAM | {"path"},
            "webhook": _STREAM | {"url", "headers", "timeout_seconds"}}


def _destination(name: str, t: dict[str, Any], base: Path, where: str) -> Destination:
    at = f"{where}: [destination.{name}]"
    kind = t.get("kind")
    if kind == "callable":
        raise ConfigError(f"{at} kind: a callable destination is made in Python "
                          "(Destination(kind='callable', sink=...))")
    if kind not in _BY_KIND:
        raise ConfigError(_hint(f"{at} kind: " + ("missing" if kind is None
                                                  else f"unknown kind {kind!r}"),
                                (_close(str(kind), _BY_KIND) if kind else None)
                                or f"use one of {', '.join(_BY_KIND)}"))
    allowed = _COMMON | _BY_KIND[kind]
    for key in t:
        if key not in allowed:
            other = [k for k, keys in _BY_KIND.items() if key in keys]
            raise ConfigError(_hint(
                f"{at} {key}: " + (f"only for {' and '.join(other)} destinations" if other
                                   else "unknown key"),
                _close(key, allowed) or f"a {kind} destination's keys are "
                + ", ".join(sorted(allowed))))
    for key in ("segments", "marketing_action"):
        if key not in t:
            raise ConfigError(f"{at}: {key} is missing")
    types: dict[str, tuple[type, ...]] = {
        "marketing_action": (str,), "cadence": (str,), "description": (str,), "path": (str,),
        "url": (str,), "mode": (str,), "split_rows": (int,), "include_exited": (bool,),
        "retention_days": (int, float), "batch_size": (int,), "batch_seconds": (int, float),
        "retry_seconds": (int, float), "retry_max_seconds": (int, float),
        "max_attempts": (int,), "timeout_seconds": (int, float), "backfill": (bool,),
    }
    for key, wanted in types.items():
        if key in t and (not isinstance(t[key], wanted) or (
                isinstance(t[key], bool) and bool not in wanted)):
            raise ConfigError(f"{at} {key}: expected {_kind(wanted[0]())}, got {_kind(t[key])}")
    options: dict[str, Any] = {k: v for k, v in t.items() if k in types}
    options["segments"] = _strings(t["segments"], at, "segments")
    for key in ("identities", "attributes"):
        if key in t:
            options[key] = _strings(t[key], at, key)
    if "path" in t:
        options["path"] = base / t["path"]
    if "headers" in t:
        headers = _table(t["headers"], at, "headers")
        if not all(isinstance(v, str) for v in headers.values()):
            raise ConfigError(f"{at} headers: every value must be a string")
        options["headers"] = dict(headers)
    if "consent" in t:
        options["consent"] = _consent(_table(t["consent"], at, "consent"), base, at)
    try:
        return Destination(name=name, kind=kind, **options)
    except ValueError as e:
        raise ConfigError(f"{at}: {str(e).split(': ', 1)[1]}") from None


def _consent(t: dict[str, Any], base: Path, at: str) -> Consent:
    _known(t, {"purpose", "field", "granted", "file", "key"}, at, "consent.")
    for key in ("purpose", "field"):
        if not isinstance(t.get(key), str):
            raise ConfigError(_hint(f"{at} consent.{key}: missing or not a string",
                                    'e.g. consent = { purpose = "email", field = "email_opt_in" }'))
    granted = t.get("granted", list(DEFAULT_GRANTED))
    if not isinstance(granted, list) or not granted or not all(
            isinstance(g, str | bool | int) for g in granted):
        raise ConfigError(f"{at} consent.granted: a non-empty list of the values that mean "
                          "consent (text, true, numbers)")
    for key in ("file", "key"):
        if key in t and not isinstance(t[key], str):
            raise ConfigError(f"{at} consent.{key}: expected a string")
    return Consent(t["purpose"], t["field"], tuple(granted),
                   None if "file" not in t else base / t["file"], t.get("key"))


def _governance(t: dict[str, Any], where: str, prefix: str) -> Governance:
    _known(t, {"labels", "datasets", "policies", "custom_labels"}, where, prefix)
    custom = frozenset(_strings(t.get("custom_labels", []), where, f"{prefix}custom_labels"))
    known = CORE_LABELS | custom

    def labels(value: Any, key: str) -> frozenset[str]:
        out = _strings(value, where, key, single=True)
        for label in out:
            if label not in known:
                raise ConfigError(_hint(
                    f"{where}: {key}: unknown label {label!r}",
                    (_close(label, known) or "")
                    + " (core labels are C1..C12, I1, I2, S1, S2, PSPD, RHD; declare others in "
                    f"{prefix}custom_labels)"))
        return frozenset(out)

    field_labels = {name: labels(v, f"{prefix}labels.{name}")
                    for name, v in _table(t.get("labels", {}), where, f"{prefix}labels").items()}
    datasets = []
    for name, raw_set in _table(t.get("datasets", {}), where, f"{prefix}datasets").items():
        key = f"{prefix}datasets.{name}"
        d = _table(raw_set, where, key)
        _known(d, {"labels", "attributes", "events", "description"}, where, key + ".")
        if "labels" not in d:
            raise ConfigError(f"{where}: {key}: labels is missing")

        def part(value: Any, what: str, k: str = key) -> frozenset[str] | None:
            if value == "*":
                return None
            return frozenset(_strings(value, where, f"{k}.{what}"))

        datasets.append(Dataset(name, labels(d["labels"], f"{key}.labels"),
                                part(d.get("attributes", []), "attributes"),
                                part(d.get("events", []), "events")))
    policies = []
    raw = t.get("policies", [])
    if not isinstance(raw, list):
        raise ConfigError(f"{where}: {prefix}policies: write each as [[{prefix}policies]]")
    for i, raw_policy in enumerate(raw):
        key = f"{prefix}policies[{i}]"
        p = _table(raw_policy, where, key)
        _known(p, {"name", "deny", "when", "description"}, where, key + ".")
        for k in ("deny", "when"):
            if k not in p:
                raise ConfigError(_hint(f"{where}: {key}: {k} is missing",
                                        'e.g. deny = ["ad_targeting"], when = "C4 or C5"'))
        if not isinstance(p["when"], str):
            raise ConfigError(f"{where}: {key}.when: expected a label expression as a string")
        try:
            when = parse_labels(p["when"])
        except LabelError as e:
            raise ConfigError(f"{where}: {key}.when: {e}") from None
        unknown = sorted(when.labels() - known)
        if unknown:
            raise ConfigError(_hint(f"{where}: {key}.when: unknown label {unknown[0]!r}",
                                    _close(unknown[0], known)
                                    or f"declare custom labels in {prefix}custom_labels"))
        name = p.get("name", f"policy {i + 1}")
        policies.append(Policy(str(name), frozenset(_strings(p["deny"], where, f"{key}.deny",
                                                             single=True)),
                               when, str(p.get("description", ""))))
    return Governance(field_labels, tuple(datasets), tuple(policies))

