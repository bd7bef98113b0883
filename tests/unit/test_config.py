"""Bad configuration is refused with one clear message, before any resource is registered."""

from __future__ import annotations

import pytest
import yaml
from pydantic_core import PydanticUndefined

from infra import reference
from infra.config import ConfigError, load_settings
from infra.identity import PROJECT_DIR
from infra.settings import REQUIRED_SECRETS, SECRET_FIELDS, StackSettings, key_of
from proof.mocks import TEST_SECRETS, ProgramMocks, committed_config, run_program


class CountingMocks(ProgramMocks):
    def __init__(self) -> None:
        self.registered: list[str] = []

    def new_resource(self, args):  # type: ignore[no-untyped-def]
        self.registered.append(f"{args.typ}::{args.name}")
        return super().new_resource(args)


def refused(stack: str, config: dict[str, str], secret_keys: set[str]) -> ConfigError:
    """Run the program; it must raise ConfigError having registered nothing."""
    mocks = CountingMocks()
    with pytest.raises(ConfigError) as raised:
        run_program(stack, config, secret_keys, mocks)
    assert mocks.registered == [], f"resources were registered before the config error: {mocks.registered}"
    message = str(raised.value)
    assert f"stack '{stack}'" in message
    assert "nothing was created" in message
    return raised.value


def problems_of(error: ConfigError) -> dict[str, str]:
    return dict(error.problems)


@pytest.mark.parametrize(
    ("stack", "key", "value", "expected"),
    [
        ("dev", "apiPort", "eighty", "valid integer"),
        ("dev", "apiWorkers", "2.5", "valid integer"),
        ("prod", "apiPort", "70000", "less than or equal to 65535"),
        ("test", "redisPort", "0", "greater than or equal to 1"),
        ("prod", "postgresImage", "Postgres::16", "not a valid image reference"),
        ("prod", "redisImage", "redis", "not pinned"),
        ("prod", "redisImage", "redis:latest", "not pinned"),
        ("prod", "memoryMb", "0", "greater than 0"),
        ("prod", "postgresMemoryMb", "-512", "greater than 0"),
        ("prod", "cpus", "-1", "greater than 0"),
        ("prod", "apiWorkers", "0", "greater than 0"),
        ("prod", "appWorkers", "-3", "greater than 0"),
        ("prod", "environment", "staging", "'dev', 'test' or 'prod'"),
        ("dev", "bindAddress", "localhost", "not an IP address"),
        ("prod", "bindAddress", "10.0.0.300", "not an IP address"),
        ("prod", "dockerHost", "my-server", "not a Docker host"),
        ("prod", "dockerSshOpts", "-i key", "JSON list"),
        ("prod", "logLevel", "LOUD", "'DEBUG', 'INFO', 'WARNING' or 'ERROR'"),
        ("prod", "acmeEmail", "ops at example.org", "should match pattern"),
        ("prod", "acmeDirectory", "http://acme.example/directory", "should match pattern"),
        ("prod", "requestBodyLimitKb", "0", "greater than 0"),
        ("test", "domain", "localhost", "must not be localhost"),
        ("prod", "domain", "Example.ORG", "should match pattern"),
        ("prod", "backupSchedule", "daily", "not a schedule (@hourly, @daily, @weekly"),
        ("prod", "backupSchedule", "5s", "shorter than 10 seconds"),
        ("prod", "backupKeep", "0", "greater than 0"),
        ("dev", "backups", "maybe", "valid boolean"),
    ],
)
def test_bad_value_names_key_and_problem(stack: str, key: str, value: str, expected: str) -> None:
    config, secret_keys = committed_config(stack, {key: value})
    error = refused(stack, config, secret_keys)
    problems = problems_of(error)
    assert f"ichrisbirch:{key}" in problems, error
    assert expected in problems[f"ichrisbirch:{key}"]


def test_unknown_key_is_a_typo_not_ignored() -> None:
    config, secret_keys = committed_config("prod", {"apiWorker": "8"})
    problems = problems_of(refused("prod", config, secret_keys))
    assert problems["ichrisbirch:apiWorker"] == "unknown key; did you mean ichrisbirch:apiWorkers?"


def test_keys_of_other_namespaces_are_left_alone() -> None:
    config, secret_keys = committed_config("dev")
    config["docker:host"] = "unix:///var/run/docker.sock"
    run_program("dev", config, secret_keys, ProgramMocks())


def test_two_services_on_one_host_port() -> None:
    config, secret_keys = committed_config("dev", {"appPort": "8000"})
    problems = problems_of(refused("dev", config, secret_keys))
    assert problems["ichrisbirch:apiPort, ichrisbirch:appPort"] == "api and app would both publish host port 8000"
    config, secret_keys = committed_config("test", {"httpsPort": "5434"})
    problems = problems_of(refused("test", config, secret_keys))
    expected = "postgres and ingress_https would both publish host port 5434"
    assert problems["ichrisbirch:postgresPort, ichrisbirch:httpsPort"] == expected


def test_unpublished_ports_do_not_collide_in_prod() -> None:
    # prod publishes only api and app: Postgres's host port is unused there.
    config, secret_keys = committed_config("prod", {"postgresPort": "8000"})
    run_program("prod", config, secret_keys, ProgramMocks())


@pytest.mark.parametrize("missing", sorted(key_of(name) for name in REQUIRED_SECRETS))
def test_missing_prod_secret_says_which_command_to_run(missing: str) -> None:
    secrets = {k: v for k, v in TEST_SECRETS.items() if k != missing}
    config, secret_keys = committed_config("prod", secrets=secrets)
    problems = problems_of(refused("prod", config, secret_keys))
    assert problems[f"ichrisbirch:{missing}"] == (
        f"is missing; run `pulumi config set --secret {missing} <value> --stack prod`"
    )


def test_plain_text_prod_secret_is_refused_and_not_echoed() -> None:
    config, secret_keys = committed_config("prod")
    secret_keys.discard("ichrisbirch:postgresPassword")  # as if written in the stack file without --secret
    error = refused("prod", config, secret_keys)
    assert "secret given in plain text" in problems_of(error)["ichrisbirch:postgresPassword"]
    assert TEST_SECRETS["postgresPassword"] not in str(error)


def test_registry_user_needs_its_password() -> None:
    config, secret_keys = committed_config(
        "prod", {"imageRegistry": "registry.example.com/team", "registryUsername": "ci"}
    )
    problems = problems_of(refused("prod", config, secret_keys))
    assert "pulumi config set --secret registryPassword" in problems["ichrisbirch:registryPassword"]


def test_every_problem_in_one_message() -> None:
    secrets = {k: v for k, v in TEST_SECRETS.items() if k != "flaskSecretKey"}
    config, secret_keys = committed_config(
        "prod", {"apiPort": "0", "bindAddress": "nowhere", "colour": "blue"}, secrets=secrets
    )
    error = refused("prod", config, secret_keys)
    expected = {"ichrisbirch:apiPort", "ichrisbirch:bindAddress", "ichrisbirch:colour", "ichrisbirch:flaskSecretKey"}
    assert set(problems_of(error)) == expected
    assert "4 problems" in str(error)


def test_a_bad_value_is_never_echoed_when_it_is_a_secret() -> None:
    config, secret_keys = committed_config("prod")
    config["ichrisbirch:redisPassword"] = "x" * 3
    secret_keys.discard("ichrisbirch:redisPassword")
    assert "xxx" not in str(refused("prod", config, secret_keys))


# --- Pulumi.yaml declares exactly the model, with the model's defaults --------------------------

PULUMI_TYPES = {"array", "boolean", "integer", "string"}


def _declared() -> dict[str, dict[str, object]]:
    document = yaml.safe_load((PROJECT_DIR / "Pulumi.yaml").read_text())
    assert document["name"] == "ichrisbirch"
    # The program's own keys; `pulumi:` ones are the engine's (autonaming).
    return {k: v for k, v in document["config"].items() if not k.startswith("pulumi:")}


def test_pulumi_yaml_declares_every_key_and_no_other() -> None:
    assert set(_declared()) == {key_of(name) for name in StackSettings.model_fields}


@pytest.mark.parametrize("field_name", sorted(StackSettings.model_fields))
def test_pulumi_yaml_default_equals_model_default(field_name: str) -> None:
    """The SDK applies no Pulumi.yaml defaults under mocks, so the two must never drift apart."""
    declared = _declared()[key_of(field_name)]
    field = StackSettings.model_fields[field_name]
    assert declared["type"] in PULUMI_TYPES
    assert declared.get("description"), f"{key_of(field_name)} has no description in Pulumi.yaml"
    assert declared["description"] == field.description, f"{key_of(field_name)}: Pulumi.yaml and the model differ"
    model_default = field.get_default(call_default_factory=True)
    if model_default is PydanticUndefined or field_name in REQUIRED_SECRETS:
        assert "default" not in declared, f"{key_of(field_name)} is required by the model"
        return
    if field_name in SECRET_FIELDS:  # optional secret: Pulumi.yaml's "" means unset
        assert (declared["default"], model_default) == ("", None)
        return
    # Pulumi has no number type: a float is declared as a string and parsed by the model.
    parsed = StackSettings.model_validate({"environment": "dev", key_of(field_name): declared["default"]})
    assert getattr(parsed, field_name) == model_default


def test_required_secrets_are_declared_secret() -> None:
    declared = _declared()
    for name in REQUIRED_SECRETS:
        assert declared[key_of(name)].get("secret") is True


@pytest.mark.parametrize("stack", ["dev", "test", "prod"])
def test_stack_files_hold_no_plain_text_secret(stack: str) -> None:
    document = yaml.safe_load((PROJECT_DIR / f"Pulumi.{stack}.yaml").read_text())
    for key, value in (document.get("config") or {}).items():
        field_name = {key_of(n): n for n in StackSettings.model_fields}.get(key.split(":", 1)[1])
        if field_name in SECRET_FIELDS:
            assert isinstance(value, dict) and set(value) == {"secure"}, f"{key} is plain text in Pulumi.{stack}.yaml"


@pytest.mark.parametrize("stack", ["Prod", "prod_eu", "prod--eu", "-prod", "p" * 41])
def test_a_stack_name_that_cannot_name_docker_objects_is_refused(stack: str) -> None:
    config, secret_keys = committed_config("prod")
    error = refused(stack, config, secret_keys)
    assert "cannot name its containers, network, volumes and image tag" in problems_of(error)["stack"]


def test_two_stacks_of_one_environment_name_everything_apart() -> None:
    config, secret_keys = committed_config("prod")
    names = {}
    for stack in ("prod", "prod-eu"):
        run = run_program(stack, config, secret_keys, ProgramMocks())
        # Everything the stack owns; base images (RemoteImage, kept locally) are shared on purpose.
        owned = [r for r in run.resources if r.type.startswith("docker:") and "remoteImage" not in r.type]
        # Autonamed resources (prod's secret holders, its migrate) get a random suffix from Pulumi: apart
        # by construction.
        named = [r for r in owned if r.name[:4] != "icb-" and (r.inputs.get("name") or r.inputs.get("imageName"))]
        names[stack] = {str(r.inputs.get("name") or r.inputs.get("imageName")) for r in named}
    assert not names["prod"] & names["prod-eu"], names["prod"] & names["prod-eu"]


def test_ssh_options_need_an_ssh_host() -> None:
    config, secret_keys = committed_config("dev", {"dockerSshOpts": '["-i", "key"]'})
    assert (
        "only applies to an ssh:// dockerHost"
        in problems_of(refused("dev", config, secret_keys))["ichrisbirch:dockerSshOpts"]
    )


def test_the_application_folder_must_hold_a_dockerfile() -> None:
    config, secret_keys = committed_config("dev", {"appDirectory": "no-such-app"})
    assert "has no Dockerfile" in problems_of(refused("dev", config, secret_keys))["ichrisbirch:appDirectory"]


@pytest.mark.parametrize("domain", ["localhost", "icb.internal", "shop.localhost"])
def test_acme_needs_a_domain_a_ca_can_reach(domain: str) -> None:
    config, secret_keys = committed_config("prod", {"acmeEmail": "ops@example.org", "domain": domain})
    problem = problems_of(refused("prod", config, secret_keys))["ichrisbirch:acmeEmail"]
    assert f"needs a public ichrisbirch:domain that an ACME CA can reach, not {domain!r}" in problem


# --- the off-host copy of the backups --------------------------------------------------------------

OFFSITE = {"backupOffsiteEndpoint": "https://s3.eu-west-1.amazonaws.com", "backupOffsiteBucket": "icb-backups"}


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("backupOffsiteEndpoint", "s3.eu-west-1.amazonaws.com", "not an endpoint URL"),
        ("backupOffsiteEndpoint", "https://s3.example.com/bucket", "not an endpoint URL"),
        ("backupOffsiteBucket", "Icb_Backups", "should match pattern"),
        ("backupOffsitePrefix", "/prod/", "should match pattern"),
        ("backupOffsiteProvider", "my provider", "should match pattern"),
        ("rcloneImage", "rclone/rclone:latest", "not pinned"),
    ],
)
def test_bad_offsite_value_names_its_key(key: str, value: str, expected: str) -> None:
    config, secret_keys = committed_config("prod", {**OFFSITE, key: value})
    problems = problems_of(refused("prod", config, secret_keys))
    assert expected in problems[f"ichrisbirch:{key}"], problems


def test_an_offsite_endpoint_needs_its_bucket_and_both_keys_as_secrets() -> None:
    plain = {k: v for k, v in TEST_SECRETS.items() if not k.startswith("backupOffsite")}
    config, secret_keys = committed_config("prod", {"backupOffsiteEndpoint": OFFSITE["backupOffsiteEndpoint"]}, plain)
    problems = problems_of(refused("prod", config, secret_keys))
    assert problems["ichrisbirch:backupOffsiteBucket"] == "is required with ichrisbirch:backupOffsiteEndpoint"
    for key in ("backupOffsiteAccessKeyId", "backupOffsiteSecretAccessKey"):
        assert (
            problems[f"ichrisbirch:{key}"] == f"is missing; run `pulumi config set --secret {key} <value> --stack prod`"
        )
    config, secret_keys = committed_config("prod", {**OFFSITE, "backupOffsiteSecretAccessKey": "in-plain-text"}, plain)
    problems = problems_of(refused("prod", config, secret_keys))
    assert "is a secret given in plain text" in problems["ichrisbirch:backupOffsiteSecretAccessKey"]
    assert "in-plain-text" not in str(problems)


@pytest.mark.parametrize(
    ("stack", "overrides", "key", "expected"),
    [
        ("prod", {**OFFSITE, "backups": "false"}, "backupOffsiteEndpoint", "but ichrisbirch:backups is false"),
        ("dev", OFFSITE, "backupOffsiteEndpoint", "but ichrisbirch:backups is false"),  # dev's file turns them off
        ("test", {**OFFSITE, "backups": "true"}, "backupOffsiteEndpoint", "test environment keeps no data"),
        ("prod", {"backupOffsiteBucket": "icb-backups"}, "backupOffsiteBucket", "no effect without"),
        ("prod", {"backupOffsiteRegion": "eu-west-1"}, "backupOffsiteRegion", "no effect without"),
    ],
)
def test_an_offsite_copy_needs_dumps_to_copy(stack: str, overrides: dict[str, str], key: str, expected: str) -> None:
    config, secret_keys = committed_config(stack, overrides)
    problems = problems_of(refused(stack, config, secret_keys))
    assert expected in problems[f"ichrisbirch:{key}"], problems


def test_the_offsite_prefix_defaults_to_the_stack_name() -> None:
    config, secret_keys = committed_config("prod", OFFSITE)
    assert load_settings("prod", config, secret_keys).backup_offsite_prefix == "prod"
    config, secret_keys = committed_config("prod", {**OFFSITE, "backupOffsitePrefix": "eu/prod"})
    assert load_settings("prod", config, secret_keys).backup_offsite_prefix == "eu/prod"


def test_the_config_reference_page_is_generated_from_pulumi_yaml() -> None:

    committed = reference.PAGE.read_text()
    assert committed == reference.render(), "docs/config.md is stale: run `python -m infra.reference --write`"
    for key in _declared():
        assert f"| `{key}` |" in committed, key
