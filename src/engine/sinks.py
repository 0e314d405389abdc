"""Where streaming deliveries go: a sink receives records, a micro-batch at a time.

A sink returns once it has accepted the records, raises `Rejected` when it refuses them for
good (they are dead-lettered), and anything else for a transient failure (retried). Three
come with pqlite: `CallableSink` (a Python function), `JsonLinesSink` (a file, fsynced per
batch) and `WebhookSink` (an HTTP POST of JSON, with the standard library).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from engine.destinations import Destination
from engine.errors import EngineError
from store.times import iso_ms

__all__ = ["CallableSink", "JsonLinesSink", "Rejected", "Retry", "Sink", "WebhookSink",
           "sink_for"]


def jsonable(value: Any) -> Any:
    """What JSON cannot write as is: instants as ISO 8601 text, numpy scalars as numbers."""
    if isinstance(value, dt.datetime):
        return iso_ms(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


# Made once: json.dumps with options builds a new encoder at every call.
RECORD_TEXT = json.JSONEncoder(default=jsonable).encode


class Rejected(Exception):
    """A sink's permanent refusal of records: retrying will not help (dead-lettered)."""


class Retry(Exception):
    """A sink's transient failure: send again later (after ``after`` seconds if given)."""

    def __init__(self, message: str, after: float | None = None) -> None:
        super().__init__(message)
        self.after = after


class Sink(Protocol):
    """Receives records, a micro-batch at a time; returns normally once they are accepted,
    raises `Rejected` for a permanent refusal and anything else for a transient one."""

    def send(self, records: list[dict[str, Any]]) -> None: ...


class CallableSink:
    """Calls ``fn(records)``."""

    def __init__(self, fn: Callable[[list[dict[str, Any]]], Any]) -> None:
        self.fn = fn

    def send(self, records: list[dict[str, Any]]) -> None:
        self.fn(records)


class JsonLinesSink:
    """Appends each record as a JSON line to ``path`` (flushed and fsynced per batch)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def send(self, records: list[dict[str, Any]]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = "".join(RECORD_TEXT(r) + "\n" for r in records)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())


class WebhookSink:
    """POSTs ``{"destination": NAME, "changes": [records]}`` as JSON to ``url``. 2xx accepts;
    408, 425, 429, 5xx and network errors are transient (Retry-After honoured); any other
    status is a permanent rejection."""

    def __init__(self, url: str, *, destination: str = "", headers: Mapping[str, str] | None = None,
                 timeout: float = 10.0) -> None:
        self.url = url
        self.destination = destination
        self.headers = {"Content-Type": "application/json",
                        "User-Agent": "pqlite-activation", **(headers or {})}
        self.timeout = timeout
        host = urllib.parse.urlparse(url).hostname or ""
        # A proxy from the environment must not capture loopback and local addresses.
        handlers = [urllib.request.ProxyHandler({})] if host in ("127.0.0.1", "localhost", "::1") else []
        self._opener = urllib.request.build_opener(*handlers)

    def send(self, records: list[dict[str, Any]]) -> None:
        body = json.dumps({"destination": self.destination, "changes": records},
                          default=jsonable).encode()
        request = urllib.request.Request(self.url, data=body, method="POST", headers=self.headers)
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                response.read()
        except urllib.error.HTTPError as e:
            detail = e.read(300).decode("utf-8", "replace").strip()
            message = f"HTTP {e.code} from {self.url}" + (f": {detail}" if detail else "")
            if e.code in (408, 425, 429) or e.code >= 500:
                raise Retry(message, _retry_after(e.headers.get("Retry-After"))) from None
            raise Rejected(message) from None
        except (urllib.error.URLError, OSError) as e:  # refused, reset, timed out, DNS
            reason = getattr(e, "reason", e)
            raise Retry(f"{self.url}: {reason}") from None


def _retry_after(value: str | None) -> float | None:
    try:
        return None if value is None else max(0.0, float(value))
    except ValueError:
        return None


def sink_for(d: Destination) -> Sink:
    if d.kind == "callable":
        assert d.sink is not None
        return CallableSink(d.sink)
    if d.kind == "jsonl":
        assert d.path is not None
        return JsonLinesSink(d.path)
    if d.kind == "webhook":
        assert d.url is not None
        return WebhookSink(d.url, destination=d.name, headers=d.headers, timeout=d.timeout_seconds)
    raise EngineError(f"destination {d.name!r} is a {d.kind} destination: file destinations "
                      "are exported by engine.exports.Exporter")
