"""Errors raised by the store: bad input data, and store files that are not what they claim.

Every message says what is wrong, where (file, row and column when known) and how to fix it.
"""

from __future__ import annotations

__all__ = ["DataError", "StoreError", "StoreFormatError"]


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
