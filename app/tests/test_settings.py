from __future__ import annotations

import pytest
from ichrisbirch.settings import AppSettings, PostgresSettings, load

BASE = {
    "ENVIRONMENT": "test",
    "FASTAPI_HOST": "api",
    "FLASK_SECRET_KEY": "s3cr3t-value-never-printed",
}


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in [
        "ENVIRONMENT",
        "FASTAPI_HOST",
        "FASTAPI_PORT",
        "FLASK_SECRET_KEY",
        "FLASK_SECRET_KEY_FILE",
        "FLASK_PORT",
        "LOG_LEVEL",
        "POSTGRES_PASSWORD",
        "POSTGRES_PASSWORD_FILE",
    ]:
        monkeypatch.delenv(name, raising=False)
    for name, value in BASE.items():
        monkeypatch.setenv(name, value)
    return monkeypatch


def test_loads_the_contract(clean_env: pytest.MonkeyPatch) -> None:
    settings = load(AppSettings, "app")
    assert settings.api_url == "http://api:8000"
    assert settings.flask_secret_key.get_secret_value() == BASE["FLASK_SECRET_KEY"]


def test_missing_variable_is_named_and_stops_the_process(
    clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    clean_env.delenv("FASTAPI_HOST")
    with pytest.raises(SystemExit) as stopped:
        load(AppSettings, "app")
    assert stopped.value.code == 2
    assert "FASTAPI_HOST: is required" in capsys.readouterr().err


def test_invalid_variable_is_named_and_no_secret_is_printed(
    clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    clean_env.setenv("FLASK_PORT", "99999")
    clean_env.setenv("ENVIRONMENT", "staging")
    with pytest.raises(SystemExit):
        load(AppSettings, "app")
    err = capsys.readouterr().err
    assert "FLASK_PORT:" in err and "ENVIRONMENT:" in err
    assert BASE["FLASK_SECRET_KEY"] not in err


def test_secret_from_file(clean_env: pytest.MonkeyPatch, tmp_path: pytest.TempPathFactory) -> None:
    secret = tmp_path / "key"  # type: ignore[operator]
    secret.write_text("from-a-file\n")
    clean_env.delenv("FLASK_SECRET_KEY")
    clean_env.setenv("FLASK_SECRET_KEY_FILE", str(secret))
    assert load(AppSettings, "app").flask_secret_key.get_secret_value() == "from-a-file"


def test_unreadable_secret_file_is_named(clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    clean_env.setenv("POSTGRES_PASSWORD_FILE", "/nonexistent/secret")
    with pytest.raises(SystemExit):
        load(PostgresSettings, "migrate")
    assert "POSTGRES_PASSWORD_FILE names a file that cannot be read" in capsys.readouterr().err
