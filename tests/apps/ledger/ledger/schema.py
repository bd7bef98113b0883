"""The ledger's migration tool, alembic-style: `python -m ledger.schema upgrade head`.

Numbered revisions, applied in order under an advisory lock, each recorded in `schema_revisions`;
expand-only, so the previous release keeps working against the new schema.
"""

from __future__ import annotations

import sys

from ledger.db import connect

LOCK = 7_311_001
REVISIONS = [
    ("0001", "CREATE TABLE entries (id bigserial PRIMARY KEY, memo text NOT NULL, cents bigint NOT NULL)"),
    ("0002", "ALTER TABLE entries ADD COLUMN created_at timestamptz NOT NULL DEFAULT now()"),
]


def upgrade() -> list[str]:
    applied = []
    with connect() as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (LOCK,))
        try:
            conn.execute("CREATE TABLE IF NOT EXISTS schema_revisions (revision text PRIMARY KEY)")
            done = {row[0] for row in conn.execute("SELECT revision FROM schema_revisions")}
            for revision, statement in REVISIONS:
                if revision in done:
                    continue
                with conn.transaction():
                    conn.execute(statement)
                    conn.execute("INSERT INTO schema_revisions VALUES (%s)", (revision,))
                applied.append(revision)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (LOCK,))
    return applied


def main(argv: list[str]) -> int:
    if argv != ["upgrade", "head"]:
        print("usage: python -m ledger.schema upgrade head", file=sys.stderr)
        return 2
    applied = upgrade()
    print(f"ledger schema: applied {', '.join(applied) or 'nothing'}; at head {REVISIONS[-1][0]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
