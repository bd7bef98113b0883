"""What both renderers share (`infra/containers.py` on one engine, `infra/swarm.py` on a swarm): the
stack component's skeleton (settings, names, provider, labels, outputs registered once), the
application image, the images it pulls, the internal CA, and the log options."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

import pulumi
import pulumi_docker as docker
import pulumi_tls as tls

from infra.identity import PROJECT_DIR, Identity
from infra.profiles import PROFILES
from infra.releases import release_key, release_tag, requested_release
from infra.settings import StackSettings
from infra.spec import ImageName, ServiceSpec, pulled_image

LOG_OPTIONS = {"max-size": "10m", "max-file": "3"}
# Where a process finds its secrets' files (each renderer places them under it, named by <VAR>_FILE).
SECRETS_DIR = "/run/secrets"
# Filled from the stack's InternalTls: the router's certificate and key (one PEM bundle, as HAProxy
# loads it), and the CA's root certificate.
PROGRAM_VALUES = frozenset({"router_tls_pem", "internal_ca_certificate"})


def one_per_name(opts: pulumi.ResourceOptions) -> pulumi.ResourceOptions:
    """For an object whose name the program gives (a network, a volume): Docker cannot hold two of
    one name, so a replacement deletes the old one first, and what uses it before that. The provider
    says so itself only when a property forces the replacement, not for `pulumi up --replace`."""
    return pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(delete_before_replace=True))


def docker_provider(
    settings: StackSettings, parent: pulumi.Resource, name: str = "docker", host: str | None = None
) -> docker.Provider:
    """An explicit provider, so the engine (or swarm manager) a stack deploys to is part of its config;
    `host` for another engine of the stack (a swarm's data node). Where a prebuilt `appImage` comes
    from a registry that needs a login, the engine pulls it with registryUsername/registryPassword."""
    host = host or settings.docker_host
    auth = None
    if settings.app_image and settings.registry_username and settings.registry_password and name == "docker":
        auth = [
            docker.ProviderRegistryAuthArgs(
                address=settings.app_image.split("/")[0],
                username=settings.registry_username,
                password=pulumi.Output.secret(settings.secret("registry_password")),
            )
        ]
    return docker.Provider(
        name,
        host=host,
        ssh_opts=settings.docker_ssh_opts if settings.docker_ssh_opts and host.startswith("ssh://") else None,
        registry_auth=auth,
        opts=pulumi.ResourceOptions(parent=parent),
    )


@dataclass(frozen=True)
class AppImage:
    """The application image a stack runs: built from `appDirectory`, or a prebuilt `appImage`."""

    resource: docker.Image | docker.RemoteImage
    reference: pulumi.Output[str]  # what containers and services run
    digest: pulumi.Output[str]  # exported as image_digest: the pushed or pulled digest, or the local id


def app_image(
    settings: StackSettings,
    identity: Identity,
    target: str,
    child: pulumi.ResourceOptions,
    by: Literal["image_id", "repo_digest"],
) -> AppImage:
    """The application image: a release put back (`ICHRISBIRCH_RELEASE`, infra/releases.py) or
    `appImage`, pulled by the engine (by every node, on swarm); or else built from `appDirectory`
    for `target`, tagged as its release and pushed where a registry is set."""
    prebuilt = requested_release() or settings.app_image
    if prebuilt:
        pulled = docker.RemoteImage("app-image", name=prebuilt, keep_locally=True, opts=child)
        return AppImage(pulled, getattr(pulled, by), pulled.repo_digest)
    build_args = {"PYTHON_BASE_IMAGE": settings.python_base_image}
    key = release_key(PROJECT_DIR / settings.app_directory, target, build_args)
    registry = None
    if settings.image_registry and settings.registry_username and settings.registry_password:
        registry = docker.RegistryArgs(
            server=settings.image_registry.split("/")[0],
            username=settings.registry_username,
            password=pulumi.Output.secret(settings.secret("registry_password")),
        )
    built = docker.Image(
        "app-image",
        # A tag per release (what it is built from), so earlier releases keep theirs: the rollback's.
        image_name=release_tag(settings, identity, key),
        build=docker.DockerBuildArgs(
            # Relative to the project directory, where `pulumi` runs the program.
            context=settings.app_directory,
            dockerfile=f"{settings.app_directory}/Dockerfile",
            target=target,
            args=build_args,
            builder_version=docker.BuilderVersion.BUILDER_BUILD_KIT,
        ),
        skip_push=not settings.image_registry,
        registry=registry,
        opts=child,
    )
    return AppImage(built, built.repo_digest, built.repo_digest)


class InternalTls(pulumi.ComponentResource):
    """The ingress's certificates: a CA of this stack (clients trust its root) and a server
    certificate for the app and api hosts, signed by it. Kept in state: a later `up` reuses them."""

    ca_certificate: pulumi.Output[str]
    """PEM of the CA's root certificate, exported for clients."""
    certificate: pulumi.Output[str]
    private_key: pulumi.Output[str]

    def __init__(self, name: str, stack: str, hosts: list[str], opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("ichrisbirch:index:InternalTls", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        ca_key = tls.PrivateKey("ca-key", algorithm="ECDSA", ecdsa_curve="P256", opts=child)
        ca = tls.SelfSignedCert(
            "ca-cert",
            private_key_pem=ca_key.private_key_pem,
            subject=tls.SelfSignedCertSubjectArgs(
                common_name=f"ichrisbirch {stack} internal CA", organization="ichrisbirch"
            ),
            is_ca_certificate=True,
            validity_period_hours=5 * 365 * 24,
            allowed_uses=["cert_signing", "crl_signing", "digital_signature"],
            opts=child,
        )
        key = tls.PrivateKey("server-key", algorithm="ECDSA", ecdsa_curve="P256", opts=child)
        request = tls.CertRequest(
            "server-csr",
            private_key_pem=key.private_key_pem,
            subject=tls.CertRequestSubjectArgs(common_name=hosts[0], organization="ichrisbirch"),
            dns_names=hosts,
            opts=child,
        )
        server = tls.LocallySignedCert(
            "server-cert",
            cert_request_pem=request.cert_request_pem,
            ca_private_key_pem=ca_key.private_key_pem,
            ca_cert_pem=ca.cert_pem,
            validity_period_hours=90 * 24,
            early_renewal_hours=30 * 24,
            allowed_uses=["digital_signature", "key_encipherment", "server_auth"],
            opts=child,
        )
        self.ca_certificate = ca.cert_pem
        self.certificate = server.cert_pem
        self.private_key = key.private_key_pem
        self.register_outputs({"ca_certificate": self.ca_certificate})

    def value(self, name: str) -> pulumi.Output[str]:
        """A value the program makes, by its SecretName: the router's PEM bundle (certificate, then
        key, as HAProxy loads it) or the CA's root certificate."""
        assert name in PROGRAM_VALUES, name
        if name == "router_tls_pem":
            return pulumi.Output.all(self.certificate, self.private_key).apply("".join)
        return self.ca_certificate


class StackComponent(pulumi.ComponentResource):
    """The component a renderer declares the stack in: its settings and names, its Docker provider
    (every child uses it), its labels, and its outputs, registered once."""

    def __init__(
        self,
        type_token: str,
        name: str,
        settings: StackSettings,
        identity: Identity,
        specs: list[ServiceSpec],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(type_token, name, None, opts)
        self.settings, self.identity = settings, identity
        self.specs = {spec.name: spec for spec in specs}
        self.provider = docker_provider(settings, self)
        self.child = pulumi.ResourceOptions(parent=self, provider=self.provider)

    def _labels(self, component: str) -> dict[str, str]:
        return self.identity.labels(self.settings.environment, component)

    def volume(self, short: str, opts: pulumi.ResourceOptions) -> docker.Volume:
        """A named volume of the stack. Prod's outlive a careless `pulumi destroy` (and any change
        that would replace them): unprotect one on purpose first."""
        protect = PROFILES[self.settings.environment].hardened
        return docker.Volume(
            short,
            name=self.identity.volume(short),
            labels=[docker.VolumeLabelArgs(label=k, value=v) for k, v in self._labels(short).items()],
            opts=one_per_name(pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(protect=protect))),
        )

    def network_labels(self) -> list[docker.NetworkLabelArgs]:
        return [docker.NetworkLabelArgs(label=k, value=v) for k, v in self._labels("network").items()]

    def pulled_images(
        self, kinds: Iterable[ImageName], by: Literal["image_id", "repo_digest"]
    ) -> dict[str, pulumi.Output[str]]:
        """A RemoteImage per pulled image, kept locally; the reference containers run it by (the
        engine's image id) or services do (the digest the manager resolved, the same on every node)."""
        refs: dict[str, pulumi.Output[str]] = {}
        for kind in sorted(kinds):
            pulled = docker.RemoteImage(
                f"{kind}-image", name=pulled_image(self.settings, kind), keep_locally=True, opts=self.child
            )
            refs[kind] = getattr(pulled, by)
        return refs

    def register(
        self,
        network: docker.Network,
        image: AppImage,
        kind: Literal["containers", "services"],
        workloads: Mapping[str, docker.Container] | Mapping[str, docker.Service],
    ) -> None:
        """The component's outputs: its network, the application image's digest, and its workloads'
        names (containers or services), which the program exports."""
        self.register_outputs(
            {
                "network": network.name,
                "image_digest": image.digest,
                kind: {name: workload.name for name, workload in workloads.items()},
            }
        )
