"""The connection, from the variables the stack gives every application (a secret by <VAR>_FILE)."""

from __future__ import annotations

import os

import psycopg


def _secret(name: str) -> str:
    path = os.environ.get(f"{name}_FILE")
    if path:
        with open(path, encoding="utf-8") as handle:
            return handle.read().strip()
    return os.environ[name]


def connect() -> psycopg.Connection:
    return psycopg.connect(
        host=os.environ["POSTGRES_HOST"],
        port=int(os.environ.get("POSTGRES_PORT", "5432")),
        user=os.environ["POSTGRES_USERNAME"],
        dbname=os.environ["POSTGRES_DB"],
        password=_secret("POSTGRES_PASSWORD"),
        connect_timeout=5,
        autocommit=True,
    )
