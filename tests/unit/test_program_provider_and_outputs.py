"""What each stack declares under Pulumi mocks: the explicit provider (a local or an ssh://
engine), the stack's outputs, the off-site copy, the replacement key."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from infra.config import load_settings
from infra.containers import replacement_key
from infra.identity import PROJECT_DIR
from infra.services import services
from infra.spec import HealthCheck, Port
from proof.mocks import TEST_SECRETS, committed_config
from proof.resources import PROVIDER, REMOTE_IMAGE
from tests.conftest import RunStack
from tests.unit.registrations import PORTS, containers, env_of, is_secret

# --- provider and outputs ------------------------------------------------------------------------


def test_every_resource_uses_the_explicit_provider(run_stack: RunStack, stack: str) -> None:
    run = run_stack(stack)
    (provider,) = run.of_type(PROVIDER).values()
    assert provider.inputs["host"] == "unix:///var/run/docker.sock"
    for r in run.resources:
        if r.type.startswith("docker:"):
            assert r.provider.startswith(provider.urn), f"{r.type}::{r.name} does not use the stack's provider"


def test_remote_engine_over_ssh(run_stack: RunStack) -> None:
    run = run_stack(
        "prod",
        dockerHost="ssh://deploy@docker.example.com",
        dockerSshOpts='["-i", "/keys/deploy"]',
        bindAddress="0.0.0.0",
    )
    (provider,) = run.of_type(PROVIDER).values()
    assert provider.inputs["host"] == "ssh://deploy@docker.example.com"
    # A provider's structured inputs reach it JSON-encoded.
    assert json.loads(provider.inputs["sshOpts"]) == ["-i", "/keys/deploy"]
    # Prod is reached through its ingress, at the configured domain.
    assert run.outputs["api_url"] == "https://api.localhost"
    dev = run_stack("dev", dockerHost="ssh://deploy@docker.example.com", bindAddress="0.0.0.0")
    assert dev.outputs["api_url"] == "http://docker.example.com:8000"


def test_outputs(run_stack: RunStack, stack: str) -> None:
    run = run_stack(stack)
    port = PORTS[stack]
    if stack == "prod":
        assert run.outputs["api_url"] == "https://api.localhost"
        assert run.outputs["app_url"] == "https://localhost"
        assert run.outputs["ingress_ca_certificate"].startswith("-----BEGIN")
    elif stack == "test":  # behind its ingress too, on its own ports and names
        assert run.outputs["api_url"] == "https://api.test.ichrisbirch.internal:8444"
        assert run.outputs["app_url"] == "https://test.ichrisbirch.internal:8444"
    else:
        assert run.outputs["api_url"] == f"http://127.0.0.1:{port['api']}"
        assert run.outputs["app_url"] == f"http://127.0.0.1:{port['app']}"
    assert run.outputs["image_digest"] == containers(run)["api"].inputs["image"]
    assert run.outputs["containers"]["api"] == containers(run)["api"].inputs["name"]


OFFSITE = {"backupOffsiteEndpoint": "https://s3.eu-west-1.amazonaws.com", "backupOffsiteBucket": "icb-backups"}


def test_the_offsite_copy_reads_the_dumps_and_its_keys_and_nothing_else(run_stack: RunStack) -> None:
    run = run_stack("prod", backupSchedule="@daily", **OFFSITE)
    offsite = containers(run)["backup-offsite"]
    inputs = offsite.inputs
    assert run.named(REMOTE_IMAGE, "rclone-image").inputs["name"] == "rclone/rclone:1.75.2"
    assert inputs["image"].startswith("sha256:plan-") and inputs["image"] != containers(run)["backup"].inputs["image"]
    assert inputs["entrypoints"] == ["sh", "-c"], "the image's entrypoint is rclone itself"
    assert inputs["command"] == ['exec sh -c "$OFFSITE_SCRIPT" offsite loop']
    assert inputs["healthcheck"]["tests"] == ["CMD-SHELL", 'exec sh -c "$OFFSITE_SCRIPT" offsite check']
    env = env_of(offsite)
    assert env["OFFSITE_SCRIPT"] == (PROJECT_DIR / "infra" / "offsite.sh").read_text()
    assert env["OFFSITE_TARGET"] == "offsite:icb-backups/prod" and env["OFFSITE_GRACE_SECONDS"] == "8640"
    assert env["RCLONE_CONFIG_OFFSITE_ENDPOINT"] == OFFSITE["backupOffsiteEndpoint"]
    assert "RCLONE_CONFIG_OFFSITE_REGION" not in env, "no region given: the provider's default"
    # The keys as files only it mounts; the database's password is not among them.
    files = {v["containerPath"]: v for v in inputs["volumes"]}
    assert set(files) == {
        "/var/lib/postgresql/data",
        "/run/secrets/backup_offsite_access_key_id",
        "/run/secrets/backup_offsite_secret_access_key",
    }
    assert all(v["readOnly"] for v in files.values()), "the dumps and the keys are read-only to it"
    assert env["RCLONE_CONFIG_OFFSITE_SECRET_ACCESS_KEY_FILE"] == "/run/secrets/backup_offsite_secret_access_key/value"
    assert not any(value in json.dumps(inputs) for value in TEST_SECRETS.values())
    readers = {name for name, c in containers(run).items() for v in c.inputs.get("volumes") or []
               if v["volumeName"].startswith("icb-prod-secret-backup-offsite-")}  # fmt: skip
    assert readers == {"backup-offsite"}
    assert inputs["user"] == "999:999" and inputs["readOnly"] is True, "the dumps' owner, with a read-only root"
    assert "backup-offsite" not in containers(run_stack("prod")), "no endpoint, no copy"
    assert "rclone-image" not in run_stack("prod").of_type(REMOTE_IMAGE)


def test_the_offsite_keys_are_pulumi_secrets_in_an_environment(run_stack: RunStack) -> None:
    run = run_stack("dev", backups="true", backupOffsiteRegion="eu-west-1", **OFFSITE)
    offsite = containers(run)["backup-offsite"]
    assert is_secret(offsite.inputs["envs"])
    env = env_of(offsite)
    assert env["RCLONE_CONFIG_OFFSITE_ACCESS_KEY_ID"] == TEST_SECRETS["backupOffsiteAccessKeyId"]
    assert env["RCLONE_CONFIG_OFFSITE_SECRET_ACCESS_KEY"] == TEST_SECRETS["backupOffsiteSecretAccessKey"]
    assert env["OFFSITE_TARGET"] == "offsite:icb-backups/dev" and env["RCLONE_CONFIG_OFFSITE_REGION"] == "eu-west-1"
    assert "PGPASSWORD" not in env and "POSTGRES_PASSWORD" not in env


def test_the_replacement_key_changes_with_every_field_of_the_spec_and_nothing_else() -> None:
    """A create-first container's name suffix: equal inputs give an equal key; a change of any field
    of its spec, its image or a secret it reads gives another (its name must change when it does)."""
    config, secret_keys = committed_config("prod")
    settings = load_settings("prod", config, secret_keys)
    api = next(spec for spec in services(settings, PROJECT_DIR) if spec.name == "api")
    key = replacement_key(api, "img@sha256:1", {"A": "x"}, [])
    assert key == replacement_key(dataclasses.replace(api), "img@sha256:1", {"A": "x"}, [])
    assert len(key) == 8 and int(key, 16) >= 0
    assert replacement_key(api, "img@sha256:2", {"A": "x"}, []) != key
    assert replacement_key(api, "img@sha256:1", {"A": "y"}, []) != key
    changed: dict[str, Any] = {
        "command": ("other",), "env": {**api.env, "X": "1"}, "entrypoint": ("sh",), "ports": (Port(1, 2, "127.0.0.1"),),
        "health": HealthCheck(("CMD", "true")), "stop_grace_seconds": 99, "aliases": ("x",), "replicas": 3,
    }  # fmt: skip
    for name, value in changed.items():
        assert replacement_key(dataclasses.replace(api, **{name: value}), "img@sha256:1", {"A": "x"}, []) != key, name
    # How a rollout treats it is no part of what it is: deployed names stay when such a field is added.
    assert replacement_key(dataclasses.replace(api, migrates=True), "img@sha256:1", {"A": "x"}, []) == key
