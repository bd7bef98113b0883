"""The stand-in provider's rules (proof/provider/), without an engine: what the plugin the real CLI
loads in place of pulumi-docker answers for Diff and Read. The integration tests run them under
the real engine, run after run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import docker.utils.build
import pytest

from infra import canonical
from proof import provider
from proof.harness.standins import copy_app


@pytest.mark.parametrize(
    ("value", "read_back"),
    [(1, "1.0"), (2, "2.0"), (0.5, "0.5"), (1.5, "1.5"), (10, "10."), (0.05, "0.1"), (0.25, "0.25")],
)
def test_cpus_read_back_as_the_provider_formats_them(value: float, read_back: str) -> None:
    assert canonical.cpus(value) == read_back


@pytest.mark.parametrize(
    ("written", "read_back"), [("3s", "3s"), ("1m", "1m0s"), ("90s", "1m30s"), ("500ms", "500ms"), ("1h", "1h0m0s")]
)
def test_durations_read_back_in_go_form(written: str, read_back: str) -> None:
    assert canonical.go_duration(canonical.parse_go_duration(written)) == read_back


def test_dockerignore_matching_agrees_with_docker_py_on_the_app_context(tmp_path: Path) -> None:
    context = copy_app(tmp_path / "app")
    for extra in ("ichrisbirch/__pycache__/x.pyc", ".venv/bin/python", "tests/.pytest_cache/x", "deep/a/b.key"):
        (context / extra).parent.mkdir(parents=True, exist_ok=True)
        (context / extra).write_text("x")
    patterns_text = (context / ".dockerignore").read_text()
    ours = {
        path.relative_to(context).as_posix()
        for path in context.rglob("*")
        if path.is_file()
        and not provider.excluded(path.relative_to(context).as_posix(), provider.dockerignore_patterns(patterns_text))
    }
    theirs_all = docker.utils.build.exclude_paths(str(context), [p for p in patterns_text.splitlines() if p.strip()])
    theirs = {p for p in theirs_all if (context / p).is_file()}
    assert ours == theirs
    assert "deep/a/b.key" not in ours and "ichrisbirch/wsgi_api.py" in ours


def container(**inputs: Any) -> dict[str, Any]:
    return {"name": "icb-prod-api", "image": "sha256:abc", **inputs}


def test_memory_without_memory_swap_shows_an_update_on_every_later_run() -> None:
    inputs = container(memory=512)
    diff = provider.diff_fields(provider.CONTAINER, provider.predict_read(provider.CONTAINER, inputs), inputs)
    assert diff.kind == "update" and diff.changed == ("memorySwap",)
    fixed = container(memory=512, memorySwap=512)
    assert (
        provider.diff_fields(provider.CONTAINER, provider.predict_read(provider.CONTAINER, fixed), fixed).kind == "same"
    )


def test_cpus_not_in_read_back_form_replace_on_every_later_run() -> None:
    inputs = container(cpus="1")
    diff = provider.diff_fields(provider.CONTAINER, provider.predict_read(provider.CONTAINER, inputs), inputs)
    assert diff.kind == "replace" and diff.replaces == ("cpus",)


def test_tmpfs_and_health_check_changes_are_state_only_unless_replace_on_changes_names_them() -> None:
    old = container(tmpfs={"/tmp": "size=64m"}, healthcheck={"tests": ["CMD", "true"], "interval": "3s"})
    new = container(tmpfs={"/tmp": "size=32m"}, healthcheck={"tests": ["CMD", "true"], "interval": "4s"})
    assert provider.diff_fields(provider.CONTAINER, old, new).kind == "update"
    forced = provider.diff_fields(provider.CONTAINER, old, new, ["healthcheck", "tmpfs"])
    assert forced.kind == "replace" and set(forced.replaces) == {"healthcheck", "tmpfs"}


def test_what_docker_fills_in_is_no_diff() -> None:
    state = container(hostname="a1b2c3", user="10001:10001", capabilities={"adds": [], "drops": ["ALL"]})
    inputs = container(capabilities={"drops": ["ALL"]})  # no hostname, no user: Docker's defaults
    assert provider.diff_fields(provider.CONTAINER, state, inputs).kind == "same"


def test_an_image_change_rebuilds_in_place_and_never_replaces() -> None:
    old = {"imageName": "ichrisbirch:prod", "build": {"context": "app", "contextDigest": "a"}}
    new = {"imageName": "ichrisbirch:prod", "build": {"context": "app", "contextDigest": "b"}}
    diff = provider.diff_fields(provider.IMAGE, old, new)
    assert diff.kind == "update" and diff.changed == ("build.contextDigest",)


def test_containers_delete_first_unless_the_option_says_otherwise() -> None:
    assert provider.deletes_before_replace(provider.CONTAINER, None, {"name": "x"})
    assert not provider.deletes_before_replace(provider.CONTAINER, False, {"name": "x"})


def test_an_unknown_input_is_refused_by_name() -> None:
    with pytest.raises(provider.NotModelled, match="gpuz"):
        provider.diff_fields(provider.CONTAINER, container(), container(gpuz="all"))
