"""`orchestrator: swarm` under mocks: the same service specs as Swarm services, secrets as files."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from infra import canonical
from infra.config import ConfigError
from proof.mocks import TEST_SECRETS, Registration, Run
from proof.resources import IMAGE, NETWORK, PROVIDER, REMOTE_IMAGE, SECRET, SERVICE, SERVICE_CONFIG, VOLUME, reveal
from tests.conftest import RunStack
from tests.unit.registrations import containers, is_secret

REGISTRY = "registry.example.com:5000/team"
DATA_NODE_HOST = "ssh://deploy@data-node"
SWARM = {"orchestrator": "swarm", "imageRegistry": REGISTRY, "dataNodeHost": DATA_NODE_HOST}


@pytest.fixture
def swarm(run_stack: RunStack) -> Run:
    return run_stack("prod", **SWARM, domain="example.org")


def services(run: Run) -> dict[str, Registration]:
    return run.of_type(SERVICE)


def container_spec(service: Registration) -> dict[str, Any]:
    return dict(reveal(service.inputs["taskSpec"])["containerSpec"])


def test_one_service_per_long_running_spec_and_the_migrations_run_in_each_api_task(swarm: Run) -> None:
    assert set(services(swarm)) == {"postgres", "redis", "backup", "api", "app", "scheduler", "router", "ingress"}
    args = container_spec(services(swarm)["api"])["args"]
    assert args[:2] == ["sh", "-c"] and args[2].startswith("python -m ichrisbirch.migrate && exec gunicorn ")
    assert not swarm.of_type("docker:index/container:Container"), "no plain containers on swarm"


def test_replicas_update_order_rollback_and_convergence(run_stack: RunStack) -> None:
    run = run_stack("prod", **SWARM, apiReplicas="3", appReplicas="2")
    for name, service in services(run).items():
        inputs = reveal(service.inputs)
        replicas = {"api": 3, "app": 2, "router": 2}.get(name, 1)
        assert inputs["mode"] == {"replicated": {"replicas": replicas}}, name
        order = "start-first" if name in ("api", "app", "router") else "stop-first"
        assert inputs["updateConfig"]["order"] == order and inputs["rollbackConfig"]["order"] == order, name
        assert inputs["updateConfig"]["failureAction"] == "rollback", name
        assert inputs["updateConfig"]["monitor"] == "20s" and inputs["updateConfig"]["maxFailureRatio"] == "0.0"
        # `up` waits until the swarm converged, for waitTimeoutSeconds, written as the provider reads it.
        assert inputs["convergeConfig"] == {"delay": "7s", "timeout": "2m"}, name
        assert inputs["endpointSpec"]["mode"] == "dnsrr", "no IPVS needed: the proxies balance over task addresses"


def test_data_stores_are_placed_on_the_data_node_and_the_ingress_publishes_in_host_mode(swarm: Run) -> None:
    placed = {
        name: reveal(s.inputs["taskSpec"]).get("placement", {}).get("constraints")
        for name, s in services(swarm).items()
    }
    assert placed["postgres"] == placed["redis"] == placed["backup"] == ["node.labels.ichrisbirch.data == true"]
    assert placed["ingress"] == ["node.role == manager"]
    ports = reveal(services(swarm)["ingress"].inputs["endpointSpec"])["ports"]
    assert ports == [
        {"targetPort": 8080, "publishedPort": 80, "publishMode": "host", "protocol": "tcp"},
        {"targetPort": 8443, "publishedPort": 443, "publishMode": "host", "protocol": "tcp"},
    ]
    published = [name for name, s in services(swarm).items() if reveal(s.inputs["endpointSpec"]).get("ports")]
    assert published == ["ingress"]


def test_no_secret_value_in_any_service_and_each_secret_is_a_file_only_its_user_reads(swarm: Run) -> None:
    for name, service in services(swarm).items():
        text = str(reveal(service.inputs))
        assert not any(value in text for value in TEST_SECRETS.values()), f"a secret value in {name}'s service"
        spec = container_spec(service)
        for variable in spec.get("env", {}):
            assert not variable.endswith(("PASSWORD", "SECRET_KEY", "_PEM", "AUTH")), (name, variable)
        user = spec.get("user", "0:0").split(":")
        for mounted in spec.get("secrets", []):
            assert mounted["fileName"].startswith("/run/secrets/") and mounted["fileMode"] == 0o400, (name, mounted)
            assert [mounted["fileUid"], mounted["fileGid"]] == user, name
            assert any(value == mounted["fileName"] for value in spec["env"].values()), "named by a *_FILE variable"
    api = container_spec(services(swarm)["api"])
    assert api["env"]["POSTGRES_PASSWORD_FILE"] == "/run/secrets/postgres_password"
    assert api["user"] == "10001:10001"


def test_each_secret_is_a_swarm_secret_with_a_generated_name_and_its_data_a_pulumi_secret(swarm: Run) -> None:
    secrets = swarm.of_type(SECRET)
    assert set(secrets) == {
        "icb-prod-secret-postgres-password",
        "icb-prod-secret-redis-password",
        "icb-prod-secret-flask-secret-key",
        "icb-prod-secret-router-tls-pem",
    }
    for name, secret in secrets.items():
        assert "name" not in secret.inputs, f"{name}: a fixed name would block a rotation (delete first, in use)"
        assert is_secret(secret.inputs["data"]), f"{name}'s data is not a Pulumi secret"
    postgres = reveal(secrets["icb-prod-secret-postgres-password"].inputs["data"])
    assert base64.b64decode(postgres).decode() == TEST_SECRETS["postgresPassword"]


def test_rendered_configurations_are_swarm_configs(swarm: Run) -> None:
    router = container_spec(services(swarm)["router"])
    assert router["args"] == ["haproxy", "-W", "-db", "-f", "/usr/local/etc/haproxy/haproxy.cfg"]
    mounted = {c["fileName"]: c for c in router["configs"]}
    assert set(mounted) == {"/usr/local/etc/haproxy/haproxy.cfg", "/usr/local/share/haproxy/hold.lua"}
    assert {c["fileUid"] for c in mounted.values()} == {"99"}
    configs = swarm.of_type(SERVICE_CONFIG)
    text = base64.b64decode(configs["icb-prod-router-haproxy-cfg"].inputs["data"]).decode()
    assert 'ssl crt "${HAPROXY_TLS_PEM_FILE}"' in text and "api.example.org" in text
    assert router["env"] == {"HAPROXY_TLS_PEM_FILE": "/run/secrets/router_tls_pem"}, "no configuration in it"


def test_every_node_runs_the_same_bytes(swarm: Run) -> None:
    (image,) = swarm.of_type(IMAGE).values()
    assert image.inputs["imageName"].startswith(f"{REGISTRY}/ichrisbirch:prod-") and image.inputs["skipPush"] is False
    # By digest: the one the push returned, and the one the manager resolved for the others.
    assert container_spec(services(swarm)["api"])["image"] == swarm.outputs["image_digest"]
    assert swarm.outputs["image_digest"].startswith(f"{REGISTRY}/ichrisbirch@sha256:")
    for name, reference in (("postgres", "postgres:16.4-bookworm"), ("router", "haproxy:2.8.10-bookworm")):
        image = container_spec(services(swarm)[name])["image"]
        assert image.startswith(reference.split(":")[0] + "@sha256:"), (name, image)
    assert REMOTE_IMAGE in {r.type for r in swarm.resources}


def test_an_attachable_overlay_network_referenced_by_id(run_stack: RunStack, swarm: Run) -> None:
    (network,) = swarm.of_type(NETWORK).values()
    assert network.inputs["driver"] == "overlay" and network.inputs["attachable"] is True
    assert "options" not in network.inputs
    for service in services(swarm).values():
        (attached,) = reveal(service.inputs["taskSpec"])["networksAdvanceds"]
        assert set(attached) == {"id", "aliases"}, "a network `name` would replace the service on every run"
    encrypted = run_stack("prod", **SWARM, overlayEncrypted="true")
    (network,) = encrypted.of_type(NETWORK).values()
    assert network.inputs["options"] == {"encrypted": "true"}


def test_durations_are_written_as_the_provider_reads_them_back(swarm: Run) -> None:
    for name, service in services(swarm).items():
        text = str(reveal(service.inputs))
        assert "m0s" not in text and "h0m" not in text, name


def test_tmpfs_modes_are_written_as_the_provider_reads_them_back(swarm: Run) -> None:
    """The provider's Read keeps a tmpfs mode's permission bits only (Mode.Perm()): anything else
    would show as a change of every hardened service on every `up`."""
    modes = {
        (name, mount["target"]): mount["tmpfsOptions"]["mode"]
        for name, service in services(swarm).items()
        for mount in reveal(service.inputs)["taskSpec"]["containerSpec"].get("mounts") or []
        if mount["type"] == "tmpfs"
    }
    assert modes, "the hardened services mount tmpfs"
    assert {where: mode for where, mode in modes.items() if mode & ~0o777} == {}


def test_volumes_are_declared_on_the_node_their_services_run_on_and_prod_data_is_protected(swarm: Run) -> None:
    providers = {p.urn: p.inputs["host"] for p in swarm.of_type(PROVIDER).values()}
    assert sorted(providers.values()) == [DATA_NODE_HOST, "unix:///var/run/docker.sock"]
    volumes = swarm.of_type(VOLUME)
    on = {name: providers[v.provider.rsplit("::", 1)[0]] for name, v in volumes.items()}
    assert on == {"postgres-data": DATA_NODE_HOST, "redis-data": DATA_NODE_HOST, "backups": DATA_NODE_HOST}
    assert all(v.protect for v in volumes.values()), "prod's data outlives a careless `pulumi destroy`"
    assert {v.inputs["name"] for v in volumes.values()} == {"icb-prod-postgres-data", "icb-prod-redis-data",
                                                            "icb-prod-backups"}  # fmt: skip
    # Each service mounts the declared volume (so it comes after it), by the name the node knows.
    mounts = container_spec(services(swarm)["postgres"])["mounts"]
    assert {"target": "/var/lib/postgresql/data", "type": "volume", "source": "icb-prod-postgres-data"}.items() <= [
        m for m in mounts if m["type"] == "volume"
    ][0].items()
    assert any("postgres-data" in d for d in services(swarm)["postgres"].dependencies)


def test_the_acme_ingress_keeps_its_certificates_on_the_manager(run_stack: RunStack) -> None:
    run = run_stack("prod", **SWARM, domain="example.org", acmeEmail="ops@example.org")
    providers = {p.urn: p.inputs["host"] for p in run.of_type(PROVIDER).values()}
    acme = run.named(VOLUME, "acme-data")
    assert providers[acme.provider.rsplit("::", 1)[0]] == "unix:///var/run/docker.sock" and acme.protect


@pytest.mark.parametrize(
    ("stack", "overrides", "key", "expected"),
    [
        ("dev", {"orchestrator": "swarm", "imageRegistry": REGISTRY}, "orchestrator", "prod environment only"),
        ("prod", {"orchestrator": "swarm"}, "imageRegistry", "is required with orchestrator swarm"),
        ("prod", {"orchestrator": "swarm", "imageRegistry": REGISTRY}, "dataNodeHost", "is required with orch"),
        ("prod", {**SWARM, "dataNodeHost": "data-node"}, "dataNodeHost", "is not a Docker host"),
        ("prod", {"dataNodeHost": DATA_NODE_HOST}, "dataNodeHost", "only applies to orchestrator swarm"),
        ("prod", {"orchestrator": "kubernetes"}, "orchestrator", "'containers' or 'swarm'"),
    ],
)
def test_swarm_config_errors(
    run_stack: RunStack, stack: str, overrides: dict[str, str], key: str, expected: str
) -> None:
    with pytest.raises(ConfigError, match=rf"ichrisbirch:{key}: .*{expected}"):
        run_stack(stack, **overrides)


def test_a_new_secret_value_is_a_new_secret_that_its_readers_move_to(run_stack: RunStack) -> None:
    before = run_stack("prod", **SWARM)
    after = run_stack("prod", **SWARM, secrets={"redisPassword": "rotated-7"})

    def mounted(run: Run) -> dict[tuple[str, str], str]:
        """(service, file) -> the id of the secret mounted there (plan ids change with a replacement)."""
        return {
            (name, entry["fileName"]): entry["secretId"]
            for name, service in services(run).items()
            for entry in container_spec(service).get("secrets", [])
        }

    old, new = mounted(before), mounted(after)
    assert old.keys() == new.keys()
    moved = {key for key in old if old[key] != new[key]}
    # Only the rotated secret is new, and exactly its readers move to it, in place (same names).
    assert moved == {("redis", "/run/secrets/redis_password"), ("api", "/run/secrets/redis_password")}
    for name in services(after):
        assert services(after)[name].inputs["name"] == services(before)[name].inputs["name"]
    # No fixed name and no delete-before-replace: the new secret exists before the old one goes.
    secret = after.named(SECRET, "icb-prod-secret-redis-password")
    assert "name" not in secret.inputs and not secret.delete_before_replace


def test_the_offsite_copy_runs_beside_the_dumps_with_its_keys_as_swarm_secrets(run_stack: RunStack) -> None:
    run = run_stack(
        "prod",
        **SWARM,
        backupOffsiteEndpoint="https://s3.example.com",
        backupOffsiteBucket="icb-backups",
    )
    offsite = services(run)["backup-offsite"]
    spec = container_spec(offsite)
    assert spec["commands"] == ["sh", "-c"] and spec["args"] == ['exec sh -c "$OFFSITE_SCRIPT" offsite loop']
    assert {s["fileName"] for s in spec["secrets"]} == {
        "/run/secrets/backup_offsite_access_key_id",
        "/run/secrets/backup_offsite_secret_access_key",
    }
    assert spec["env"]["RCLONE_CONFIG_OFFSITE_ACCESS_KEY_ID_FILE"] == "/run/secrets/backup_offsite_access_key_id"
    assert [(m["source"], m["readOnly"]) for m in spec["mounts"] if m["type"] == "volume"] == [
        ("icb-prod-backups", True)
    ]
    placement = reveal(offsite.inputs["taskSpec"])["placement"]["constraints"]
    assert placement == ["node.labels.ichrisbirch.data == true"], "beside the backups volume"


def test_a_deleted_service_waits_past_its_process_stop_for_the_node_to_remove_its_containers(
    run_stack: RunStack, swarm: Run
) -> None:
    """`pulumi destroy` fails a service whose container is not removed within its stop grace period
    (the provider waits that long): the grace is each process's own stop, as one engine stops it,
    and 20 s more for its node to remove the container."""
    one_engine = {
        name.split("-")[0]: c.inputs["stopTimeout"]
        for name, c in containers(run_stack("prod", domain="example.org")).items()
    }
    for name, service in services(swarm).items():
        grace = canonical.parse_go_duration(container_spec(service)["stopGracePeriod"]) // 10**9
        assert grace >= one_engine[name] + 20, name
