"""The test engine refuses, by name, what it cannot model: before any Docker object exists."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pulumi
import pulumi_docker as docker
import pytest

from proof.engine import DockerEngine, UpFailed


def up_fails(tmp_path: Path, program: Callable[[], None]) -> str:
    engine = DockerEngine(tmp_path / "state.json")
    with pytest.raises(UpFailed) as failure:
        engine.up("dev", {}, set(), program=program)
    assert engine.resources.keys() <= {
        r for r, res in engine.resources.items() if res.type == "pulumi:providers:docker"
    }, "nothing but the provider was recorded"
    return str(failure.value.__cause__)


def local() -> pulumi.ResourceOptions:
    return pulumi.ResourceOptions(provider=docker.Provider("docker", host="unix:///var/run/docker.sock"))


def test_a_container_input_it_does_not_apply_is_named(tmp_path: Path) -> None:
    message = up_fails(
        tmp_path, lambda: docker.Container("c", name="x", image="sha256:0", privileged=True, opts=local())
    )
    assert "privileged" in message and "not modelled" in message


def test_attach_and_logs_need_must_run_false(tmp_path: Path) -> None:
    message = up_fails(tmp_path, lambda: docker.Container("c", name="x", image="sha256:0", attach=True, opts=local()))
    assert "attach/logs with mustRun true" in message


def test_ssh_options_on_a_local_socket_are_refused(tmp_path: Path) -> None:
    def program() -> None:
        provider = docker.Provider("docker", host="unix:///var/run/docker.sock", ssh_opts=["-i", "key"])
        docker.Network("n", name="n", opts=pulumi.ResourceOptions(provider=provider))

    assert "sshOpts on a unix:// host" in up_fails(tmp_path, program)


def test_registry_credentials_cannot_be_modelled_here(tmp_path: Path) -> None:
    # A push is modelled (the test swarm's registry needs no login); a login is not.
    def program() -> None:
        docker.Image(
            "i",
            image_name="registry.example.com/team/app:v1",
            build=docker.DockerBuildArgs(context="app", dockerfile="app/Dockerfile"),
            skip_push=False,
            registry=docker.RegistryArgs(server="registry.example.com", username="ci", password="hunter2-test"),
            opts=local(),
        )

    assert "registry credentials" in up_fails(tmp_path, program)


@pytest.mark.parametrize(
    ("option", "name"),
    [
        (lambda: pulumi.ResourceOptions(retain_on_delete=True), "retain_on_delete"),
        (lambda: pulumi.ResourceOptions(custom_timeouts=pulumi.CustomTimeouts(create="5m")), "custom_timeouts"),
        (lambda: pulumi.ResourceOptions(aliases=[pulumi.Alias(name="old-name")]), "aliases"),
    ],
)
def test_a_resource_option_it_does_not_model_is_named(
    tmp_path: Path, option: Callable[[], pulumi.ResourceOptions], name: str
) -> None:
    def program() -> None:
        docker.Network("n", name="n", opts=pulumi.ResourceOptions.merge(local(), option()))

    message = up_fails(tmp_path, program)
    assert f"Network n: the resource option(s) {name} are not modelled" in message, message
