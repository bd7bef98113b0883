"""Postgres access: short-lived connections from the contract's settings."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg.rows import dict_row

from ichrisbirch.settings import PostgresSettings


@contextmanager
def connect(settings: PostgresSettings) -> Iterator[psycopg.Connection[dict[str, object]]]:
    """A connection that commits on success and rolls back on error."""
    with psycopg.connect(**settings.conninfo(), row_factory=dict_row) as connection:
        yield connection
