"""Settings from the environment (the ichrisbirch contract), one model per part of the application.

Each process loads only what it uses: the api needs Postgres and Redis, the app needs the api
and its session key, the scheduler needs Postgres. Every secret can also come from a file named
by `<NAME>_FILE` (Docker secrets). A missing or invalid variable stops the process at start with
a message naming it; the message never contains a value.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import Field, SecretStr, ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict


class SecretFiles(PydanticBaseSettingsSource):
    """Reads each secret field from the file named by `<NAME>_FILE`, when that variable is set."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        variable = f"{field_name.upper()}_FILE"
        path = os.environ.get(variable)
        if field.annotation is not SecretStr or not path:
            return None, field_name, False
        try:
            return Path(path).read_text().strip(), field_name, False
        except OSError as error:
            raise ValueError(f"{variable} names a file that cannot be read ({error.strerror})") from None

    def __call__(self) -> dict[str, Any]:
        values = {}
        for name, field in self.settings_cls.model_fields.items():
            value, key, _ = self.get_field_value(field, name)
            if value is not None:
                values[key] = value
        return values


class _Settings(BaseSettings):
    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # A *_FILE wins over the plain variable, so a secret file is never shadowed by a stale value.
        return (init_settings, SecretFiles(settings_cls), env_settings)


class CommonSettings(_Settings):
    environment: Literal["dev", "test", "prod"]
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


class PostgresSettings(_Settings):
    postgres_host: str
    postgres_port: int = Field(5432, ge=1, le=65535)
    postgres_username: str
    postgres_password: SecretStr
    postgres_db: str

    def conninfo(self) -> dict[str, Any]:
        return {
            "host": self.postgres_host,
            "port": self.postgres_port,
            "user": self.postgres_username,
            "password": self.postgres_password.get_secret_value(),
            "dbname": self.postgres_db,
            "connect_timeout": 5,
        }


class RedisSettings(_Settings):
    redis_host: str
    redis_port: int = Field(6379, ge=1, le=65535)
    redis_password: SecretStr
    redis_db: int = Field(0, ge=0, le=15)


class ApiSettings(CommonSettings, PostgresSettings, RedisSettings):
    """The api (FastAPI): Postgres for tasks and heartbeats, Redis for the task list cache."""


class AppSettings(CommonSettings):
    """The app (Flask): finds the api through FASTAPI_HOST/FASTAPI_PORT."""

    fastapi_host: str
    fastapi_port: int = Field(8000, ge=1, le=65535)
    flask_host: str = "0.0.0.0"
    flask_port: int = Field(5000, ge=1, le=65535)
    flask_secret_key: SecretStr

    @property
    def api_url(self) -> str:
        return f"http://{self.fastapi_host}:{self.fastapi_port}"


class SchedulerSettings(CommonSettings, PostgresSettings):
    """The scheduler: records each heartbeat in Postgres."""

    scheduler_heartbeat_seconds: int = Field(60, gt=0)
    # The Postgres advisory lock that elects the one scheduler that runs jobs (see leadership.py).
    scheduler_lock_id: int = Field(0x1C5C, ge=0, le=2**31 - 1)


class MigrateSettings(CommonSettings, PostgresSettings):
    """Schema migrations: Postgres only."""


S = TypeVar("S", bound=BaseSettings)
T = TypeVar("T")


def describe(error: ValidationError) -> str:
    """One line per bad variable, naming it; input values are left out so no secret is printed."""
    lines = []
    for detail in error.errors(include_input=False, include_url=False):
        variable = str(detail["loc"][0]).upper() if detail["loc"] else "?"
        if detail["type"] == "missing":
            lines.append(
                f"  {variable}: is required (set {variable}"
                + (f" or {variable}_FILE)" if "PASSWORD" in variable or "SECRET" in variable else ")")
            )
        else:
            lines.append(f"  {variable}: {detail['msg'].removeprefix('Value error, ')}")
    return "\n".join(lines)


def load(settings_cls: type[S], process: str) -> S:
    """Load settings or stop the process with a message that names each bad variable."""
    try:
        return settings_cls()
    except ValidationError as error:
        print(f"{process}: invalid configuration, not starting:\n{describe(error)}", file=sys.stderr)
        raise SystemExit(2) from None
    except ValueError as error:  # an unreadable *_FILE
        print(f"{process}: invalid configuration, not starting:\n  {error}", file=sys.stderr)
        raise SystemExit(2) from None


def built_on_first_use(attribute: str, build: Callable[[], T]) -> Callable[[str], T]:
    """A module `__getattr__` that builds `attribute` (the WSGI/ASGI app) once, on first use.

    Servers look the app up at start, so a bad environment still stops them before they serve,
    while importing the module (tests, tooling) needs no environment at all.
    """
    cached = functools.cache(build)

    def module_getattr(name: str) -> T:
        if name == attribute:
            return cached()
        raise AttributeError(name)

    return module_getattr
