"""Releases: a tag per release (what the image is built from), and a rollback as one `up` with
ICHRISBIRCH_RELEASE set, refused for an image that is not one of the stack's releases."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from infra.config import ConfigError
from infra.identity import PROJECT_DIR
from infra.releases import RELEASE_ENV, release_key
from proof.resources import IMAGE, REMOTE_IMAGE, SERVICE, reveal
from tests.conftest import RunStack
from tests.unit.registrations import containers
from tests.unit.test_swarm import SWARM


@pytest.fixture
def app_copy(tmp_path: Path) -> Path:
    return Path(shutil.copytree(PROJECT_DIR / "app", tmp_path / "app", ignore=shutil.ignore_patterns("__pycache__")))


def test_the_release_key_follows_what_the_image_is_built_from(app_copy: Path) -> None:
    args = {"PYTHON_BASE_IMAGE": "python:3.12-slim-bookworm"}
    key = release_key(app_copy, "production", args)
    assert re.fullmatch(r"[0-9a-f]{12}", key)
    assert release_key(app_copy, "production", args) == key, "the same source, the same release"
    (app_copy / "ichrisbirch" / "__pycache__").mkdir(exist_ok=True)
    (app_copy / "ichrisbirch" / "__pycache__" / "x.pyc").write_bytes(b"cache")
    assert release_key(app_copy, "production", args) == key, "caches are no source"
    assert release_key(app_copy, "development", args) != key
    assert release_key(app_copy, "production", {"PYTHON_BASE_IMAGE": "python:3.13-slim"}) != key
    init = app_copy / "ichrisbirch" / "__init__.py"
    init.write_text(init.read_text() + "\n# changed\n")
    assert release_key(app_copy, "production", args) != key, "a source change is a new release"


def test_a_rollback_runs_the_release_named_instead_of_building(
    run_stack: RunStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    built = run_stack("prod").named(IMAGE, "app-image").inputs["imageName"]
    monkeypatch.setenv(RELEASE_ENV, "ichrisbirch:prod-0123456789ab")
    run = run_stack("prod")
    assert not run.of_type(IMAGE), "nothing built"
    assert run.named(REMOTE_IMAGE, "app-image").inputs["name"] == "ichrisbirch:prod-0123456789ab"
    # Run by the engine's image id, as every pulled image: create-first and health-gated as any release.
    assert containers(run)["api"].inputs["image"].startswith("sha256:")
    assert containers(run)["api"].delete_before_replace is False
    # No migration: migrate keeps the image it ran, so nothing waits for it; only a rollback does so.
    assert containers(run)["migrate"].ignore_changes == ["image"]
    assert [name for name, c in containers(run).items() if c.ignore_changes] == ["migrate"]
    # Side by side: api, app and scheduler wait for none of one another (each still health-gated).
    release = {"api", "app", "scheduler"}
    urns = {name: c.urn for name, c in containers(run).items()}
    for name in release:
        waits_for = {other for other, urn in urns.items() if urn in containers(run)[name].dependencies}
        assert not waits_for & release, (name, waits_for)
    assert urns["postgres"] in containers(run)["api"].dependencies
    monkeypatch.delenv(RELEASE_ENV)
    again = containers(run_stack("prod"))
    assert not again["migrate"].ignore_changes, "the next `up` migrates again"
    assert urns["api"] in again["app"].dependencies and urns["app"] in again["scheduler"].dependencies, "in order"
    assert run_stack("prod").named(IMAGE, "app-image").inputs["imageName"] == built, "the next `up` builds again"


@pytest.mark.parametrize("release", ["ichrisbirch:dev-0123456789ab", "postgres:16", "ichrisbirch:prod"])
def test_a_release_of_another_stack_or_image_is_refused(
    run_stack: RunStack, monkeypatch: pytest.MonkeyPatch, release: str
) -> None:
    monkeypatch.setenv(RELEASE_ENV, release)
    with pytest.raises(
        ConfigError, match=rf"stack 'prod'(.|\n)*{RELEASE_ENV}: '{re.escape(release)}' is not a release"
    ):
        run_stack("prod")


def test_a_release_by_digest_is_taken(run_stack: RunStack, monkeypatch: pytest.MonkeyPatch) -> None:
    reference = "registry.example.com/team/ichrisbirch@sha256:" + "cd" * 32
    monkeypatch.setenv(RELEASE_ENV, reference)
    assert run_stack("prod").named(REMOTE_IMAGE, "app-image").inputs["name"] == reference


def test_on_swarm_a_rollback_has_every_node_pull_the_release_by_its_digest(
    run_stack: RunStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = f"{SWARM['imageRegistry']}/ichrisbirch:prod-0123456789ab"
    monkeypatch.setenv(RELEASE_ENV, release)
    run = run_stack("prod", **SWARM)
    assert not run.of_type(IMAGE) and run.named(REMOTE_IMAGE, "app-image").inputs["name"] == release
    api = reveal(run.of_type(SERVICE)["api"].inputs["taskSpec"])["containerSpec"]["image"]
    assert api.startswith(f"{SWARM['imageRegistry']}/ichrisbirch@sha256:"), "by the digest the manager resolved"
