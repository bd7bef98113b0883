"""The ACME ingress (Caddy, with `acmeEmail` set), as far as this machine can take it: Caddy itself
(Debian's 2.6, the stand-in) accepts the Caddyfile the program renders, started the way the program
starts it. Nothing here can reach an ACME CA, so no certificate is obtained."""

from __future__ import annotations

from pathlib import Path

import pytest

from proof.harness.cli import TEST_LABEL, docker
from proof.harness.standins import Standins
from proof.mocks import ProgramMocks, committed_config, run_program
from proof.resources import CONTAINER, reveal

pytestmark = pytest.mark.docker


def acme_ingress(tmp_path: Path) -> tuple[list[str], dict[str, str], list[str]]:
    """The prod ingress's command, environment and files (as `-v` options: each holder's upload
    written to a folder mounted where the ingress mounts the holder's volume), as the program
    declares them with ACME on. The Caddyfile is at tmp_path/<its volume>/Caddyfile."""
    config, secret_keys = committed_config("prod", {"domain": "example.org", "acmeEmail": "ops@example.org"})
    run = run_program("prod", config, secret_keys, ProgramMocks())
    containers = run.of_type(CONTAINER)
    ingress = containers["ingress"]
    env = dict(str(entry).split("=", 1) for entry in reveal(ingress.inputs["envs"]))
    mounts = []
    for volume in ingress.inputs["volumes"]:
        holders = [
            c
            for c in containers.values()
            if c.inputs.get("start") is False
            and volume["volumeName"] in [v["volumeName"] for v in c.inputs.get("volumes") or []]
        ]
        for holder in holders:
            for upload in reveal(holder.inputs["uploads"]):
                local = tmp_path / volume["volumeName"]
                local.mkdir(exist_ok=True)
                (local / Path(upload["file"]).name).write_text(upload["content"])
                mounts += ["-v", f"{local}:{volume['containerPath']}:ro"]
    return [str(part) for part in ingress.inputs["command"]], env, mounts


def caddy_validate(standins: Standins, command: list[str], env: dict[str, str], mounts: list[str]) -> tuple[int, str]:
    """Run the ingress's own start command with `caddy validate` in place of `caddy run`."""
    assert command[:2] == ["caddy", "run"], command
    result = docker(
        "run", "--rm", "--label", TEST_LABEL, *[f"--env={key}={value}" for key, value in env.items()],
        "--read-only", "--tmpfs", "/tmp", "--tmpfs", "/config", "--tmpfs", "/data", "--cap-drop", "ALL", *mounts,
        standins.caddy, "caddy", "validate", *command[2:],
        check=False, timeout=120,
    )  # fmt: skip
    return result.returncode, result.stdout + result.stderr


def test_caddy_accepts_the_rendered_acme_configuration(standins: Standins, tmp_path: Path) -> None:
    command, env, mounts = acme_ingress(tmp_path)
    code, output = caddy_validate(standins, command, env, mounts)
    assert code == 0 and "Valid configuration" in output, output


def test_caddy_refuses_a_broken_one(standins: Standins, tmp_path: Path) -> None:
    # The check above can fail: the same start with one directive misspelt.
    command, env, mounts = acme_ingress(tmp_path)
    (caddyfile,) = tmp_path.glob("*/Caddyfile")
    caddyfile.write_text(caddyfile.read_text().replace("reverse_proxy https://", "reverse_proxi https://"))
    code, output = caddy_validate(standins, command, env, mounts)
    assert code != 0 and "reverse_proxi" in output, output


def test_caddy_needs_the_ca_file_the_environment_names(standins: Standins, tmp_path: Path) -> None:
    # The Caddyfile names the CA by {$ROUTER_CA_FILE}: without the variable, Caddy refuses it.
    command, env, mounts = acme_ingress(tmp_path)
    del env["ROUTER_CA_FILE"]
    code, output = caddy_validate(standins, command, env, mounts)
    assert code != 0, output
