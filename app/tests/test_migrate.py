from __future__ import annotations

import pytest
from ichrisbirch import db, migrate
from ichrisbirch.settings import ApiSettings


def test_migrations_are_idempotent(api_settings: ApiSettings) -> None:
    assert migrate.apply(api_settings) == []  # the session fixture already applied them
    with db.connect(api_settings) as connection:
        versions = [row["version"] for row in connection.execute("SELECT version FROM schema_migrations ORDER BY 1")]
    assert versions == [version for version, _, _ in migrate.MIGRATIONS]


def test_main_reports_an_unreachable_database(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("POSTGRES_HOST", "127.0.0.1")
    monkeypatch.setenv("POSTGRES_PORT", "1")
    assert migrate.main() == 1
    err = capsys.readouterr().err
    assert "migrate: cannot reach Postgres at 127.0.0.1:1" in err


def test_main_succeeds_against_the_database(api_settings: ApiSettings, capsys: pytest.CaptureFixture[str]) -> None:
    assert migrate.main() == 0
    assert f"schema at version {migrate.MIGRATIONS[-1][0]}" in capsys.readouterr().out
