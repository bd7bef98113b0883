"""Postgres access: short-lived connections from the contract's settings."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg.rows import dict_row

from ichrisbirch.settings import PostgresSettings


class CommitOutcomeUnknown(psycopg.OperationalError):
    """The connection broke while Postgres was committing: the write may have been made, or not.

    Every other database error means nothing was written, so the api answers it 503 and the router
    sends the request again once Postgres is back; this one it answers 500, so that it is not sent
    twice (docs/operating.md, "While a dependency is away").
    """


@contextmanager
def connect(settings: PostgresSettings) -> Iterator[psycopg.Connection[dict[str, object]]]:
    """A connection that commits on success and rolls back on error (closing it without a commit)."""
    connection = psycopg.connect(**settings.conninfo(), row_factory=dict_row)
    try:
        yield connection
        try:
            connection.commit()
        except psycopg.OperationalError as error:
            if error.sqlstate is None:  # no answer from the server: the connection itself broke
                raise CommitOutcomeUnknown(f"the connection broke during the commit: {error}") from error
            raise  # the server's own answer: it did not commit
    finally:
        connection.close()
