"""Releases: every application image a stack has run, named afterwards, kept, and put back.

    scripts/rollback prod                        # the releases; then the one before the running one
    scripts/rollback prod ichrisbirch:prod-3f9c2a1b7d40
    python -m infra.releases list prod [--docker-host ssh://...]
    python -m infra.releases prune prod          # keep the newest keepReleases (default 5)

A built release is tagged `<repository>:<stack>-<key>`, the key a digest of what the image is built
from (the application folder's files, the target, the build arguments), so the same source is the
same release and every release keeps a name of its own on the engine (and in the registry, where
the stack pushes). A prebuilt one (`appImage`) is its digest, kept by the registry CI pushed it to.
What a release is, is read from the image: its version and source commit (the OCI labels
`org.opencontainers.image.version` and `.revision`, where the Dockerfile sets them) and when it
went out (when the engine tagged it). The one running is what the api runs: on one engine its
newest container's image, on a swarm the digest its service is pinned to.

A rollback is a `pulumi up` with `ICHRISBIRCH_RELEASE=<release>` in its environment: the program
runs that image instead of building, through the same path as any release (create-first, health-
gated). The variable lasts for that one `up`: the next one builds again (or runs `appImage`), as
the stack is configured. A rollback does not undo migrations: the release put back runs against
the newer schema, which is safe when every migration only adds (expand), and removing what the old
release still uses (contract) waits until no release that needs it is kept.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from infra.config import ConfigError
from infra.engine import Engine
from infra.identity import Identity, committed_stack_config
from infra.settings import StackSettings

RELEASE_ENV = "ICHRISBIRCH_RELEASE"  # the release one `pulumi up` runs instead of building
KEY_LENGTH = 12
# Never part of what an image is built from (as app/.dockerignore and most others leave out).
_NOT_SOURCE = frozenset({".git", ".venv", "venv", "__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache"})


def _source_files(app_dir: Path) -> Iterator[Path]:
    for path in sorted(app_dir.rglob("*")):
        relative = path.relative_to(app_dir)
        if path.is_file() and not _NOT_SOURCE & set(relative.parts) and path.suffix != ".pyc":
            yield path


def release_key(app_dir: Path, target: str, build_args: Mapping[str, str]) -> str:
    """A digest of what the image is built from: every file of the application folder (by path and
    content), the target and the build arguments."""
    digest = hashlib.sha256(json.dumps([target, sorted(build_args.items())]).encode())
    for path in _source_files(app_dir):
        digest.update(str(PurePosixPath(path.relative_to(app_dir))).encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:KEY_LENGTH]


def repository(settings: StackSettings) -> str:
    """Where a stack's built releases are tagged: the registry's repository, or a local name."""
    return f"{settings.image_registry}/ichrisbirch" if settings.image_registry else "ichrisbirch"


def release_tag(settings: StackSettings, identity: Identity, key: str) -> str:
    return f"{repository(settings)}:{identity.stack}-{key}"


def requested_release(environ: Mapping[str, str] = os.environ) -> str | None:
    """The release this `up` puts back (a rollback), or None for the stack as configured."""
    return environ.get(RELEASE_ENV) or None


def refuse_a_foreign_release(settings: StackSettings, stack: str, release: str) -> None:
    """A release put back must be one of this stack's (its tag) or an image by digest."""
    if "@sha256:" in release or release.startswith(f"{repository(settings)}:{stack}-"):
        return
    message = (
        f"{release!r} is not a release of the {stack} stack: give one that `python -m infra.releases list"
        f" {stack}` shows ({repository(settings)}:{stack}-<key>), or an image by digest"
    )
    raise ConfigError(stack, [(RELEASE_ENV, message)])


# --- on the engine --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Release:
    tag: str  # <repository>:<stack>-<key>, or a prebuilt image's reference
    image_id: str
    version: str
    commit: str
    tagged_at: str  # when the engine tagged it: when it went out
    running: bool = False

    def line(self) -> str:
        mark = "*" if self.running else " "
        return f"{mark} {self.tag}  {self.version or '-'}  {self.commit[:12] or '-'}  {self.tagged_at}"


@dataclass(frozen=True)
class StackReleases:
    """A stack's releases on its Docker engine, through the Docker CLI."""

    stack: str
    engine: Engine
    repository: str
    keep: int

    @classmethod
    def of(cls, stack: str, docker_host: str | None = None) -> StackReleases:
        config = committed_stack_config(stack)
        registry = str(config.get("ichrisbirch:imageRegistry", ""))
        keep = int(config.get("ichrisbirch:keepReleases", StackSettings.model_fields["keep_releases"].default))
        engine = Engine.configured(stack, docker_host)
        return cls(stack, engine, f"{registry}/ichrisbirch" if registry else "ichrisbirch", keep)

    def docker(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.engine.run(*args, timeout=300)

    def running(self) -> str | None:
        """What the stack's api runs: on a swarm, the digest its service is pinned to; on one engine,
        the image id of its newest api container."""
        api = Identity(self.stack).container("api")
        service = self.docker("service", "inspect", "-f", "{{.Spec.TaskTemplate.ContainerSpec.Image}}", api)
        if service.returncode == 0 and "@sha256:" in service.stdout:
            return service.stdout.strip().rpartition("@")[2]
        found = self.docker(
            "ps", "--filter", f"label=ichrisbirch.stack={self.stack}", "--filter",
            "label=ichrisbirch.service=api", "--format", "{{.ID}}",
        )  # fmt: skip
        ids = found.stdout.split()
        if not ids:
            return None
        return self.docker("inspect", "-f", "{{.Image}}", ids[0]).stdout.strip() or None

    def releases(self) -> list[Release]:
        """Newest first, by when each went out."""
        listed = self.docker("images", "--format", "{{.Repository}}:{{.Tag}}", "--filter",
                             f"reference={self.repository}:{self.stack}-*")  # fmt: skip
        tags = sorted(set(listed.stdout.split()))
        if not tags:
            return []
        running = self.running()
        infos = json.loads(self.docker("image", "inspect", *tags).stdout or "[]")
        found = []
        for tag, info in zip(tags, infos, strict=True):
            labels = (info.get("Config") or {}).get("Labels") or {}
            found.append(
                Release(
                    tag=tag,
                    image_id=info["Id"],
                    version=labels.get("org.opencontainers.image.version", ""),
                    commit=labels.get("org.opencontainers.image.revision", ""),
                    tagged_at=(info.get("Metadata") or {}).get("LastTagTime") or info.get("Created", ""),
                    running=running is not None and _is(info, running),
                )
            )
        return sorted(found, key=lambda r: r.tagged_at, reverse=True)

    def previous(self) -> Release:
        """The newest release that went out before the one running."""
        releases = self.releases()
        running = next((i for i, r in enumerate(releases) if r.running), None)
        if running is None:
            raise LookupError(f"no running release of the {self.stack} stack among {len(releases)} on its engine")
        older = [r for r in releases[running + 1 :] if r.image_id != releases[running].image_id]
        if not older:
            raise LookupError(f"no release of the {self.stack} stack before the running one")
        return older[0]

    def prune(self) -> list[str]:
        """Remove the tags of all but the newest `keep` releases (never the running one); return them."""
        removed = []
        for release in self.releases()[self.keep :]:
            if release.running:
                continue
            if self.docker("rmi", release.tag).returncode == 0:
                removed.append(release.tag)
        return removed


def _is(image: Mapping[str, Any], running: str) -> bool:
    """Whether an image (as `docker image inspect` shows it) is what runs: by id, or by a digest."""
    return bool(image["Id"] == running or any(d.endswith(f"@{running}") for d in image.get("RepoDigests") or []))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.releases", description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["list", "prune", "previous"])
    parser.add_argument("stack")
    parser.add_argument("--docker-host", help="the stack's Docker engine (default: dockerHost of Pulumi.<stack>.yaml)")
    args = parser.parse_args(argv)
    releases = StackReleases.of(args.stack, args.docker_host)
    if args.action == "list":
        print(f"releases of {args.stack} (* running), newest first: tag  version  commit  went out")
        for release in releases.releases():
            print(release.line())
    elif args.action == "prune":
        for tag in releases.prune():
            print(f"removed {tag}")
    else:
        try:
            print(releases.previous().tag)
        except LookupError as missing:
            print(f"rollback: {missing}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
