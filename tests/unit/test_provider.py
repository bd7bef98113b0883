"""The provider's rules (proof/provider/) and the plan diff built on them, without an engine.

The figures come from the provider's source (../shared/docs/provider-semantics.md); the
integration tests check the same rules against a real engine run after run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import docker.utils.build
import pytest
import yaml

from infra import canonical
from proof import provider
from proof.harness.standins import copy_app
from proof.plan import PlannedStep, diff_plans, mismatches, plan


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


# --- the plan diff ----------------------------------------------------------------------------------


def steps(stack: str, **overrides: str) -> dict[str, PlannedStep]:
    old = yaml.safe_load(plan(stack))
    new = yaml.safe_load(plan(stack, overrides))
    return {step.key.split("::")[-1]: step for step in diff_plans(old, new)}


@pytest.mark.parametrize("stack", ["dev", "test", "prod"])
def test_the_committed_program_has_no_perpetual_diff(stack: str) -> None:
    # The state an `up` leaves (inputs plus what Read writes back) against the same inputs again.
    assert steps(stack) == {}


def test_a_postgres_image_change_replaces_postgres_and_what_takes_its_outputs_first() -> None:
    planned = steps("prod", postgresImage="postgres:16.5-bookworm")
    # The backup runs the same image; migrate takes Postgres's id; api, scheduler and backup take
    # migrate's exit gate: the engine deletes them before Postgres (its delete-first cascade).
    assert set(planned) == {"postgres-image", "postgres", "backup", "migrate", "api", "scheduler"}
    assert planned["postgres"].op == "replace" and planned["postgres"].fields == ("image",)
    assert planned["postgres"].deletes_first == ("scheduler", "backup", "api", "migrate"), planned["postgres"]
    assert (
        "(the old one is deleted first; deletes first: scheduler, backup, api, migrate)" in planned["postgres"].line()
    )
    for name in ("migrate", "api", "scheduler", "backup"):
        assert planned[name].delete_first and planned[name].dependent_of == "postgres", planned[name]
    assert planned["api"].line().startswith("  +- replaces Container api (icb-prod-api-"), planned["api"].line()
    assert "deleted before postgres: its labels take outputs" in planned["api"].line()


def test_a_release_cascades_nothing_in_prod() -> None:
    """Under the engine's rules a release takes nothing serving down: migrate is create-first."""
    planned = steps("prod", memoryMb="1024", heartbeatSeconds="61")
    assert planned["api"].op == planned["scheduler"].op == "replace", planned
    assert not any(step.delete_first for step in planned.values()), planned
    assert not any(step.dependent_of or step.deletes_first for step in planned.values()), planned


def test_a_memory_change_updates_in_place_and_rolls_create_first_containers() -> None:
    planned = steps("dev", memoryMb="1024")
    assert {s.op for s in planned.values()} == {"update"}
    assert planned["api"].fields == ("memory", "memorySwap")
    # In prod, api, app and scheduler take a new name with any change of their spec: a rollout. The
    # autonamed migrate keeps its name, and memory is updated in place.
    rolled = steps("prod", memoryMb="1024")
    assert {n for n, s in rolled.items() if s.op == "replace"} == {"api", "app", "scheduler"}
    assert not rolled["api"].delete_first and rolled["migrate"].op == "update"


def test_a_source_change_rebuilds_and_replaces_the_application(tmp_path: Path) -> None:
    app = copy_app(tmp_path / "app")
    (app / "ichrisbirch" / "__init__.py").write_text((app / "ichrisbirch" / "__init__.py").read_text() + "\n# edit\n")
    old = yaml.safe_load(plan("prod", {"appDirectory": str(copy_app(tmp_path / "base"))}))
    new = yaml.safe_load(plan("prod", {"appDirectory": str(app)}))
    planned = {s.key.split("::")[-1]: s.op for s in diff_plans(old, new)}
    assert planned == {
        "app-image": "update",
        "migrate": "replace",
        "api": "replace",
        "app": "replace",
        "scheduler": "replace",
    }


def test_deleting_the_protected_volume_is_flagged_as_refused() -> None:
    old = yaml.safe_load(plan("prod"))
    new = yaml.safe_load(plan("prod"))
    del new["resources"]["docker:index/volume:Volume::postgres-data"]
    planned = {s.key.split("::")[-1]: s for s in diff_plans(old, new)}
    assert planned["postgres-data"].op == "delete" and planned["postgres-data"].protected
    assert "REFUSED" in planned["postgres-data"].line()


def test_a_real_preview_is_checked_against_the_prediction() -> None:
    planned = list(steps("prod", postgresImage="postgres:16.5-bookworm").values())
    urn = "urn:pulumi:prod::ichrisbirch::ichrisbirch:index:Deployment${kind}::{name}"

    def container(op: str, name: str) -> dict[str, str]:
        return {"op": op, "urn": urn.format(kind="docker:index/container:Container", name=name)}

    cascade = ["scheduler", "backup", "api", "migrate"]
    matching = {
        "steps": [
            container("same", "app"),
            {"op": "replace", "urn": urn.format(kind="docker:index/remoteImage:RemoteImage", name="postgres-image")},
            *(container("delete-replaced", name) for name in cascade),
            container("delete-replaced", "postgres"),
            container("replace", "postgres"),
            container("create-replacement", "postgres"),
            *(
                step
                for name in reversed(cascade)
                for step in (container("replace", name), container("create-replacement", name))
            ),
        ]
    }
    assert mismatches(planned, matching) == []
    differing = {"steps": [*matching["steps"], container("update", "app")]}
    assert mismatches(planned, differing) == [
        "docker:index/container:Container::app: predicted no change, the preview says update"
    ]
    # The order is compared too: here Postgres is created before it is deleted, and api deleted after it.
    wrong_order = [
        container("same", "app"),
        {"op": "replace", "urn": urn.format(kind="docker:index/remoteImage:RemoteImage", name="postgres-image")},
        *(container("delete-replaced", name) for name in ("scheduler", "backup", "migrate")),
        container("create-replacement", "postgres"),
        container("delete-replaced", "postgres"),
        *(container("create-replacement", name) for name in ("migrate", "scheduler", "backup")),
        container("delete-replaced", "api"),
        container("create-replacement", "api"),
    ]
    assert mismatches(planned, {"steps": wrong_order}) == [
        "docker:index/container:Container::postgres: predicted delete-first, the preview creates the replacement first",
        "docker:index/container:Container::postgres: predicted to delete api first, the preview deletes it after",
    ]
