"""Errors raised by the store: bad input data, and store files that are not what they claim.

Every message says what is wrong, where (file, row and column when known) and how to fix it.
"""

from __future__ import annotations

__all__ = ["DataError", "StoreError", "StoreFormatError", "WalError"]


class StoreError(Exception):
    """Root of every error the store raises on purpose."""


class DataError(StoreError, ValueError):
    """Input data pqlite cannot load as it is: the message names the column and row.

    ``row`` is 0-based within the input table (the first data row of a CSV file is row 0);
    ``source`` is the file or table the row is in, when known.
    """

    def __init__(
        self,
        message: str,
        *,
        column: str | None = None,
        row: int | None = None,
        source: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.message, self.column, self.row, self.source, self.hint = (
            message,
            column,
            row,
            source,
            hint,
        )
        super().__init__(str(self))

    def located(self, source: str) -> DataError:
        """The same error, saying which input (file or table) it is in."""
        if self.source is not None:
            return self
        return DataError(
            self.message, column=self.column, row=self.row, source=source, hint=self.hint
        )

    def __str__(self) -> str:
        where = [
            part
            for part in (
                self.source,
                None if self.row is None else f"row {self.row}",
                None if self.column is None else f"column {self.column!r}",
            )
            if part
        ]
        text = f"{', '.join(where)}: {self.message}" if where else self.message
        return f"{text}\n  hint: {self.hint}" if self.hint else text


class StoreFormatError(StoreError):
    """A store directory that is missing, damaged, or written by a newer pqlite."""


class WalError(StoreError):
    """A write-ahead log that cannot be used as it is: damaged, locked, closed or broken.

    ``path`` and ``offset`` (a byte offset in that file) say where, when the error is about a
    place in the log; ``hint`` says how to proceed.
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        offset: int | None = None,
        hint: str | None = None,
    ) -> None:
        self.message, self.path, self.offset, self.hint = message, path, offset, hint
        super().__init__(str(self))

    def __str__(self) -> str:
        where = [
            part
            for part in (self.path, None if self.offset is None else f"byte {self.offset}")
            if part
        ]
        text = f"{', '.join(where)}: {self.message}" if where else self.message
        return f"{text}\n  hint: {self.hint}" if self.hint else text
