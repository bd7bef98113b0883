"""Local stand-ins for the images nothing here can pull, and builds of the application's image."""

from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from infra.identity import PROJECT_DIR
from proof.harness.cli import TEST_LABEL, docker

APP_DIR = PROJECT_DIR / "app"


@dataclass(frozen=True)
class Standins:
    """Local images for the references nothing here can pull, each under its stack config key."""

    python: str
    postgres: str
    redis: str
    haproxy: str
    caddy: str
    rclone: str

    KEYS: ClassVar[dict[str, str]] = {
        "python": "pythonBaseImage",
        "postgres": "postgresImage",
        "redis": "redisImage",
        "haproxy": "haproxyImage",
        "caddy": "caddyImage",
        "rclone": "rcloneImage",
    }

    @classmethod
    def build(cls) -> Standins:
        """Build what is missing or out of date (tests/standins/build.sh, cached by content): the one
        way the suite and the benchmark get their images."""
        result = subprocess.run(
            ["bash", str(PROJECT_DIR / "tests" / "standins" / "build.sh")], capture_output=True, text=True, timeout=1200
        )
        if result.returncode != 0:
            raise RuntimeError(f"building the stand-in images failed:\n{result.stdout}\n{result.stderr}")
        refs = dict(line.strip().split("=", 1) for line in result.stdout.splitlines() if "Image=" in line)
        missing = sorted(set(cls.KEYS.values()) - set(refs))
        if missing:
            raise RuntimeError(f"tests/standins/build.sh printed no reference for {missing}:\n{result.stdout}")
        return cls(**{name: refs[key] for name, key in cls.KEYS.items()})

    def config(self) -> dict[str, str]:
        """The stack config that points every image reference at its stand-in."""
        return {key: getattr(self, name) for name, key in self.KEYS.items()}


@dataclass(frozen=True)
class Build:
    tag: str
    seconds: float
    log: str


def build_image(context: Path, target: str, tag: str, base: str, *extra: str) -> Build:
    started = time.monotonic()
    result = docker(
        "build",
        "--progress=plain",
        "--target",
        target,
        "--build-arg",
        f"PYTHON_BASE_IMAGE={base}",
        "--label",
        TEST_LABEL,
        "-t",
        tag,
        *extra,
        str(context),
        check=False,
        timeout=1200,
    )
    seconds = time.monotonic() - started
    assert result.returncode == 0, f"building {target} failed:\n{result.stderr[-4000:]}"
    return Build(tag, seconds, result.stderr)  # BuildKit's plain progress goes to stderr


def copy_app(destination: Path) -> Path:
    shutil.copytree(APP_DIR, destination, ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache"))
    return destination
