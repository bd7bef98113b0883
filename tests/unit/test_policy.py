"""The policy pack's rules: prod passes every one, dev and test are reported on, and each rule
fires on a crafted bad resource with a message naming the resource and what to change."""

from __future__ import annotations

import dataclasses
import json
import subprocess
from typing import Any

import pack
import pytest
import rules
from pulumi_policy import (
    EnforcementLevel,
    PolicyCustomTimeouts,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

from infra.identity import PROJECT_DIR
from infra.ingress import HostNames, caddy_config, tcp_ingress_config
from tests.conftest import RunStack

CONTAINER = rules.CONTAINER


def registered(run_stack: RunStack, stack: str, secrets_visible: bool = True, **config: str) -> list[rules.Resource]:
    run = run_stack(stack, **config)
    return [
        rules.Resource(
            r.type, r.name, r.inputs if secrets_visible else unwrap_all(r.inputs), secrets_visible, protect=r.protect
        )
        for r in run.resources
    ]


def unwrap_all(value: Any) -> Any:
    """What pulumi-policy's analyzer hands a policy: secret markers removed."""
    if isinstance(value, dict):
        return unwrap_all(value["value"]) if rules.is_secret(value) else {k: unwrap_all(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unwrap_all(v) for v in value]
    return value


@pytest.mark.parametrize("secrets_visible", [True, False], ids=["under-mocks", "as-the-analyzer-sees-it"])
def test_prod_passes_every_rule(run_stack: RunStack, secrets_visible: bool) -> None:
    found = [v for r in registered(run_stack, "prod", secrets_visible) for v in rules.violations(r)]
    assert found == []
    # With the off-host copy of the backups: its keys, too, are files.
    offsite = {"backupOffsiteEndpoint": "https://s3.example.com", "backupOffsiteBucket": "icb-backups"}
    with_offsite = registered(run_stack, "prod", secrets_visible, **offsite)
    assert any(r.name == "backup-offsite" for r in with_offsite)
    assert [v for r in with_offsite for v in rules.violations(r)] == []


def test_dev_and_test_are_reported_on(run_stack: RunStack) -> None:
    dev = {rule for r in registered(run_stack, "dev") for rule, _ in rules.violations(r)}
    # Hot reload needs the source bind-mounted; dev servers run as the image user and writable.
    assert {"no-host-mounts", "read-only-root-filesystem", "privileges-dropped", "no-root-user"} <= dev
    test = {rule for r in registered(run_stack, "test") for rule, _ in rules.violations(r)}
    assert {"read-only-root-filesystem", "privileges-dropped", "no-root-user"} <= test
    assert "no-host-mounts" not in test, "the test stack runs the image as built"
    assert "secrets-not-in-environment" in dev & test, "dev and test keep secrets in environments (advisory)"
    for found in (dev, test):
        assert not found & {"no-plain-text-secret-env", "pinned-images", "health-checked", "no-public-ports"}


def test_every_resource_belongs_to_an_environment(run_stack: RunStack) -> None:
    for stack in ("dev", "test", "prod"):
        for r in registered(run_stack, stack):
            if r.type == CONTAINER:
                assert rules.environment(r) == stack, r.name


GOOD_PROD: dict[str, Any] = {
    "name": "icb-prod-api",
    "image": "sha256:" + "a" * 64,
    "user": "10001:10001",
    "readOnly": True,
    "capabilities": {"drops": ["ALL"]},
    "securityOpts": ["no-new-privileges:true"],
    "memory": 512,
    "cpus": "1.0",
    "ulimits": [{"name": "nproc", "soft": 256, "hard": 256}],
    "healthcheck": {"tests": ["CMD", "true"]},
    "envs": ["POSTGRES_PASSWORD_FILE=/run/secrets/postgres_password/value"],
    "restart": "always",
    "labels": [{"label": "ichrisbirch.environment", "value": "prod"}],
}
ROUTER = "frontend http\n    bind :8080\n    http-request redirect location https://x code 301\n\nfrontend https\n"
INGRESS = tcp_ingress_config()
GOOD_INGRESS: dict[str, Any] = {
    **GOOD_PROD,
    "name": "icb-prod-ingress",
    "ports": [{"internal": 8443, "external": 443, "ip": "127.0.0.1"}],
    "envs": [f"HAPROXY_CONFIG={INGRESS}"],
    "labels": [
        {"label": "ichrisbirch.environment", "value": "prod"},
        {"label": "ichrisbirch.service", "value": "ingress"},
    ],
}

INGRESS_IDENTITY = {"labels": GOOD_INGRESS["labels"]}
ROUTER_IDENTITY = {"labels": [{"label": "ichrisbirch.service", "value": "router"}]}
HAPROXY_CFG, CADDYFILE = "/usr/local/etc/haproxy/haproxy.cfg", "/etc/caddy/Caddyfile"


def config_holder(service: str, path: str, text: str) -> dict[str, Any]:
    """A holder of `service`'s configuration file at `path`, as infra/containers.py declares one."""
    return {
        "start": False,
        "mustRun": False,
        "uploads": [{"file": path, "content": text, "permissions": "0444"}],
        "labels": [
            {"label": "ichrisbirch.environment", "value": "prod"},
            {"label": "ichrisbirch.config-of", "value": service},
            {"label": "ichrisbirch.file", "value": path},
        ],
    }


BAD: list[tuple[str, str, dict[str, Any], str]] = [
    ("no-root-user", CONTAINER, {"user": None}, "set `user`"),
    ("no-root-user", CONTAINER, {"user": "0:0"}, "runs as root"),
    ("read-only-root-filesystem", CONTAINER, {"readOnly": False}, "set `readOnly: true`"),
    ("privileges-dropped", CONTAINER, {"capabilities": {}}, "drops: [ALL]"),
    ("privileges-dropped", CONTAINER, {"securityOpts": []}, "no-new-privileges"),
    ("resource-limits", CONTAINER, {"memory": None}, "set `memory`"),
    ("resource-limits", CONTAINER, {"ulimits": []}, "nproc"),
    ("health-checked", CONTAINER, {"healthcheck": None}, "set `healthcheck.tests`"),
    ("no-host-mounts", CONTAINER, {"volumes": [{"containerPath": "/src", "hostPath": "/home/me/src"}]}, "named volume"),
    (
        "no-host-mounts",
        CONTAINER,
        {"volumes": [{"containerPath": "/var/run/docker.sock", "hostPath": "/var/run/docker.sock"}]},
        "Docker socket",
    ),
    (
        "no-public-ports",
        CONTAINER,
        {**INGRESS_IDENTITY, "ports": [{"internal": 8443, "external": 443, "ip": "0.0.0.0"}]},
        "set `ip`",
    ),
    (
        "no-public-ports",
        CONTAINER,
        {**INGRESS_IDENTITY, "ports": [{"internal": 8443, "external": 443}]},
        "all interfaces",
    ),
    (
        "plain-http-only-redirects",
        CONTAINER,
        config_holder("ingress", HAPROXY_CFG, "frontend http\n    bind :8080\n    use_backend app\n"),
        "must pass port 80 to the router",
    ),
    (
        "plain-http-only-redirects",
        CONTAINER,
        config_holder("router", HAPROXY_CFG, "frontend http\n    bind :8080\n    use_backend app\n"),
        "must only redirect",
    ),
    (
        "plain-http-only-redirects",
        CONTAINER,
        config_holder("ingress", CADDYFILE, "http://example.org {\n\treverse_proxy app:5000\n}\n"),
        "must only redirect",
    ),
    (
        "only-ingress-publishes",
        CONTAINER,
        {"ports": [{"internal": 8000, "external": 8000, "ip": "127.0.0.1"}]},
        "only the ingress publishes",
    ),
    (
        "no-plain-text-secret-env",
        CONTAINER,
        {"envs": ["LOG_LEVEL=INFO", "POSTGRES_PASSWORD=hunter2"]},
        "POSTGRES_PASSWORD in plain text",
    ),
    (
        "secrets-not-in-environment",
        CONTAINER,
        {"envs": {rules.SECRET_SIG: rules.SECRET_VALUE, "value": ["FLASK_SECRET_KEY=9f8e7d6c"]}},
        "named by FLASK_SECRET_KEY_FILE",
    ),
    ("pinned-images", CONTAINER, {"image": "redis:latest"}, "not pinned"),
    ("pinned-images", CONTAINER, {"image": "redis"}, "not pinned"),
    ("restart-policy", CONTAINER, {"restart": "no"}, "set `restart`"),
]


def test_a_good_prod_container_passes() -> None:
    assert rules.violations(rules.Resource(CONTAINER, "api", GOOD_PROD)) == []
    assert rules.violations(rules.Resource(CONTAINER, "ingress", GOOD_INGRESS)) == []
    assert rules.violations(rules.Resource(CONTAINER, "router", {**GOOD_PROD, **ROUTER_IDENTITY})) == []
    for service, path, text in (("ingress", HAPROXY_CFG, INGRESS), ("router", HAPROXY_CFG, ROUTER)):
        holder = {**GOOD_PROD, **config_holder(service, path, text)}
        assert rules.violations(rules.Resource(CONTAINER, f"{service}-config", holder)) == [], service
    caddy = caddy_config(HostNames.of("example.org"), "ops@example.org", "https://acme.example/directory", 443)
    holder = {**GOOD_PROD, **config_holder("ingress", CADDYFILE, caddy)}
    assert rules.violations(rules.Resource(CONTAINER, "ingress-caddyfile", holder)) == []
    caddy_run = ["caddy", "run", "--config", CADDYFILE, "--adapter", "caddyfile"]
    acme_ingress = {**GOOD_INGRESS, "user": None, "command": caddy_run}
    assert rules.violations(rules.Resource(CONTAINER, "ingress", acme_ingress)) == []
    # Root is allowed to the ACME ingress only without capabilities.
    found = rules.violations(rules.Resource(CONTAINER, "ingress", {**acme_ingress, "capabilities": {}}))
    assert [name for name, _ in found] == ["no-root-user", "privileges-dropped"]


@pytest.mark.parametrize(("rule", "typ", "change", "fix"), BAD, ids=[f"{b[0]}:{i}" for i, b in enumerate(BAD)])
def test_each_rule_fires_naming_the_resource_and_the_fix(rule: str, typ: str, change: dict[str, Any], fix: str) -> None:
    resource = rules.Resource(typ, "api", {**GOOD_PROD, **change})
    found = rules.violations(resource)
    # A secret in plain text is in the environment too.
    also = ["secrets-not-in-environment"] if rule == "no-plain-text-secret-env" else []
    assert [name for name, _ in found] == [rule, *also], found
    message = found[0][1]
    assert message.startswith("icb-prod-api: ") and fix in message


@pytest.mark.parametrize("typ,key", [(rules.REMOTE_IMAGE, "name"), (rules.IMAGE, "imageName")])
def test_image_references_must_be_pinned(typ: str, key: str) -> None:
    assert rules.violations(rules.Resource(typ, "redis-image", {key: "redis:7.4.1"})) == []
    (found,) = rules.violations(rules.Resource(typ, "redis-image", {key: "redis:latest"}))
    assert found[0] == "pinned-images" and "redis-image" in found[1]


# --- the pack: mandatory for prod resources, advisory for the others ---------------------------


def run_pack(
    props: dict[str, Any], typ: str = CONTAINER, stack: str = "s", name: str = "api"
) -> list[tuple[str, EnforcementLevel | None, str]]:
    """Every policy of the pack on one resource, as the analyzer would call it: (policy, level, message)."""
    reported: list[tuple[str, EnforcementLevel | None, str]] = []
    urn = f"urn:pulumi:{stack}::ichrisbirch::ichrisbirch:index:Deployment${typ}::{name}"
    options = PolicyResourceOptions(False, [], None, [], PolicyCustomTimeouts(0, 0, 0), [])
    for policy in pack.policies():
        if not isinstance(policy, ResourceValidationPolicy):
            continue
        args = ResourceValidationArgs(typ, props, urn, name, options, None)

        def report(message: str, _urn: str | None, policy: ResourceValidationPolicy = policy) -> None:
            reported.append((policy.name, policy.enforcement_level, message))

        policy.validate(args, report)
    return reported


def test_pack_enforces_prod_and_advises_elsewhere() -> None:
    bad_prod = {**GOOD_PROD, "readOnly": False}
    assert run_pack(bad_prod) == [
        (
            "read-only-root-filesystem-prod",
            EnforcementLevel.MANDATORY,
            "icb-prod-api: has a writable root "
            "filesystem: set `readOnly: true` and mount tmpfs where the process writes",
        ),
    ]
    bad_dev = {**bad_prod, "name": "icb-dev-api", "labels": [{"label": "ichrisbirch.environment", "value": "dev"}]}
    assert [(name, level) for name, level, _ in run_pack(bad_dev)] == [
        ("read-only-root-filesystem", EnforcementLevel.ADVISORY)
    ]
    assert run_pack(GOOD_PROD) == []


def test_the_analyzer_cannot_see_secret_markers_but_still_catches_placeholders() -> None:
    plain = {**GOOD_PROD, "envs": ["POSTGRES_PASSWORD=changeme"]}
    assert [name for name, _, _ in run_pack(plain)] == [
        "no-plain-text-secret-env-prod",
        "secrets-not-in-environment-prod",
    ]
    # A real value cannot be told from a placeholder there; its variable's name still can.
    real = {**GOOD_PROD, "envs": ["POSTGRES_PASSWORD=9f8e7d6c5b4a"]}
    assert [name for name, _, _ in run_pack(real)] == ["secrets-not-in-environment-prod"]
    assert run_pack({**GOOD_PROD, "envs": ["POSTGRES_PASSWORD_FILE=/run/secrets/postgres_password/value"]}) == []


def test_resources_without_labels_take_the_environment_of_their_stack() -> None:
    unpinned = {"name": "redis:latest", "keepLocally": True}
    assert [(n, level) for n, level, _ in run_pack(unpinned, rules.REMOTE_IMAGE, "prod", "redis-image")] == [
        ("pinned-images-prod", EnforcementLevel.MANDATORY)
    ]
    assert [(n, level) for n, level, _ in run_pack(unpinned, rules.REMOTE_IMAGE, "dev", "redis-image")] == [
        ("pinned-images", EnforcementLevel.ADVISORY)
    ]


def test_the_pack_loads_in_its_own_environment() -> None:
    """policy/.venv, from policy/requirements.txt, is what `pulumi preview --policy-pack policy` runs."""
    python = PROJECT_DIR / "policy" / ".venv" / "bin" / "python"
    assert python.exists(), "the pack's environment is made by scripts/setup"
    result = subprocess.run(
        [str(python), "-c", "import json, pack; print(json.dumps(sorted(p.name for p in pack.policies())))"],
        cwd=PROJECT_DIR / "policy",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    names = json.loads(result.stdout)
    assert "no-root-user-prod" in names and "backups-kept" in names
    assert len(names) == 2 * len(rules.RULES) + len(rules.STACK_RULES)


# --- stack rules: what prod must have ------------------------------------------------------------


def test_prod_backs_up_into_a_protected_volume(run_stack: RunStack) -> None:
    assert rules.backups_kept(registered(run_stack, "prod")) == []
    assert rules.backups_kept(registered(run_stack, "prod", backups="false")) == [
        "prod has no backup service: set `backups` true in its stack config",
        "prod has no backups volume (icb-<stack>-backups)",
    ]
    unprotected = [
        dataclasses.replace(r, protect=False) if r.props.get("name") == "icb-prod-backups" else r
        for r in registered(run_stack, "prod")
    ]
    assert rules.backups_kept(unprotected) == ["volume icb-prod-backups is not protected: give it protect=True"]
    assert rules.backups_kept(registered(run_stack, "dev")) == [], "only prod must"
    # On swarm too: the volume is declared (on the data node) and protected.
    swarm = {"orchestrator": "swarm", "imageRegistry": "registry.example.com/team", "dataNodeHost": "ssh://data"}
    on_swarm = registered(run_stack, "prod", True, **swarm)
    assert rules.backups_kept(on_swarm) == []
    unprotected = [dataclasses.replace(r, protect=False) if r.props.get("name") == "icb-prod-backups" else r
                   for r in on_swarm]  # fmt: skip
    assert rules.backups_kept(unprotected) == ["volume icb-prod-backups is not protected: give it protect=True"]


def test_the_pack_checks_the_stack_as_the_analyzer_hands_it(run_stack: RunStack) -> None:
    (policy,) = [p for p in pack.policies() if isinstance(p, StackValidationPolicy)]
    assert policy.enforcement_level == EnforcementLevel.MANDATORY

    def as_analyzed(resources: list[rules.Resource]) -> StackValidationArgs:
        timeouts = PolicyCustomTimeouts(0, 0, 0)
        return StackValidationArgs([
            PolicyResource(
                r.type, unwrap_all(r.props), f"urn:pulumi:prod::ichrisbirch::{r.type}::{r.name}", r.name,
                PolicyResourceOptions(r.protect, [], None, [], timeouts, []), None, None, [], {},
            )
            for r in resources
        ])  # fmt: skip

    reported: list[str] = []
    policy.validate(as_analyzed(registered(run_stack, "prod")), lambda message, _urn: reported.append(message))
    assert reported == []
    policy.validate(
        as_analyzed(registered(run_stack, "prod", backups="false")), lambda message, _urn: reported.append(message)
    )
    assert reported and reported[0].startswith("prod has no backup service")
