"""The ledger's one HTTP service, plain WSGI: `gunicorn ledger.service:application`.

GET /livez (health: the process serves and its database answers), GET / (name and version),
GET /entries, POST /entries {"memo": str, "cents": int}, GET /whoami (who the request says it is
from, and over which scheme, as the proxies in front of it passed them on).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

import psycopg

from ledger import VERSION
from ledger.db import connect

StartResponse = Callable[[str, list[tuple[str, str]]], Any]


def _reply(start: StartResponse, status: str, body: object) -> Iterable[bytes]:
    data = json.dumps(body).encode()
    start(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]


def application(environ: dict[str, Any], start: StartResponse) -> Iterable[bytes]:
    method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO", "/")
    try:
        if path == "/livez":
            with connect() as conn:
                conn.execute("SELECT 1")
            return _reply(start, "200 OK", {"status": "ok", "version": VERSION})
        if path == "/":
            return _reply(start, "200 OK", {"name": "ledger", "version": VERSION})
        if path == "/whoami":
            forwarded = {"for": environ.get("HTTP_X_FORWARDED_FOR"), "proto": environ.get("HTTP_X_FORWARDED_PROTO")}
            return _reply(start, "200 OK", {"forwarded": forwarded, "peer": environ.get("REMOTE_ADDR")})
        if path == "/entries" and method == "GET":
            with connect() as conn:
                rows = conn.execute("SELECT id, memo, cents FROM entries ORDER BY id").fetchall()
            return _reply(start, "200 OK", [{"id": i, "memo": m, "cents": c} for i, m, c in rows])
        if path == "/entries" and method == "POST":
            length = int(environ.get("CONTENT_LENGTH") or 0)
            entry = json.loads(environ["wsgi.input"].read(length) or b"{}")
            memo, cents = str(entry["memo"]), int(entry["cents"])
            with connect() as conn:
                try:
                    (entry_id,) = conn.execute(
                        "INSERT INTO entries (memo, cents) VALUES (%s, %s) RETURNING id", (memo, cents)
                    ).fetchone() or (None,)
                except psycopg.OperationalError as error:
                    if error.sqlstate is not None:
                        raise  # the server's own answer: nothing was written, a 503 below
                    # The connection broke with the statement sent (autocommit): it may have been
                    # written. A 503 would have the router send it again: the operator's contract.
                    return _reply(start, "500 Internal Server Error", {"error": "outcome unknown"})
            return _reply(start, "201 Created", {"id": entry_id, "version": VERSION})
        return _reply(start, "404 Not Found", {"error": f"no route {method} {path}"})
    except (KeyError, ValueError) as error:
        return _reply(start, "400 Bad Request", {"error": str(error)})
    except Exception as error:  # noqa: BLE001 - the database away, nothing written: the router retries
        return _reply(start, "503 Service Unavailable", {"error": type(error).__name__})
