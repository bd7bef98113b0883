"""Run the program in-process under Pulumi mocks and record what it registers.

The Pulumi engine is not needed: `pulumi.runtime.set_mocks` stands in for it, a `Mocks` decides
what each resource's outputs are, and `RecordingMonitor` keeps every registration with the
options the engine would see (dependencies, delete-before-replace, protect). The unit tests and
the policy pack's tests run the program through `run_program`.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker.utils.build
import pulumi
import yaml
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import rpc
from pulumi.runtime import settings as runtime_settings
from pulumi.runtime.mocks import MockCallArgs, MockResourceArgs, Mocks

from infra.identity import PROJECT, PROJECT_DIR
from infra.program import main
from proof.resources import (
    CONTAINER,
    IMAGE,
    REMOTE_IMAGE,
    SECRET,
    SECRET_SIG,
    SECRET_VALUE_SIG,
    SERVICE_CONFIG,
    reveal,
)


@dataclass
class Registration:
    type: str
    name: str
    urn: str
    parent: str
    provider: str
    inputs: dict[str, Any]
    dependencies: list[str]
    delete_before_replace: bool
    protect: bool
    replace_on_changes: list[str]
    delete_before_replace_defined: bool = False  # an explicit False overrides the provider's default
    ignore_changes: list[str] = field(default_factory=list)  # inputs whose new values are not diffed
    # Which input came from which resources' outputs (the SDK sends it with each registration): the
    # engine's delete-first cascade follows these, not `dependencies` (which `depends_on` adds to).
    property_dependencies: dict[str, list[str]] = field(default_factory=dict)
    deleted_with: str = ""  # the URN of the resource whose delete takes this one along


@dataclass
class Run:
    resources: list[Registration] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)

    def of_type(self, type_token: str) -> dict[str, Registration]:
        return {r.name: r for r in self.resources if r.type == type_token}

    def named(self, type_token: str, name: str) -> Registration:
        return self.of_type(type_token)[name]


class RecordingMonitor(pulumi_mocks.MockMonitor):
    """A MockMonitor that also records each registration with the options the engine would see.

    While the mocks handle a registration, `current()` returns it (on the registering thread), so a
    Mocks that stands in for the engine can honour the resource options too.
    """

    def __init__(self, mocks: pulumi_mocks.Mocks) -> None:
        super().__init__(_WithSecretOutputs(mocks, self))
        self.run = Run()
        self._lock = threading.Lock()
        self._current = threading.local()

    def current(self) -> Registration:
        return self._current.registration  # type: ignore[no-any-return]

    def RegisterResource(self, request: Any) -> Any:  # noqa: N802 (gRPC method name)
        if request.type == "pulumi:pulumi:Stack":
            return super().RegisterResource(request)  # type: ignore[no-untyped-call]
        registration = Registration(
            type=request.type,
            name=request.name,
            urn=self.make_urn(request.parent, request.type, request.name),
            parent=request.parent,
            provider=request.provider,
            inputs=whole_numbers(rpc.deserialize_properties(request.object, keep_unknowns=True)),
            dependencies=sorted(set(request.dependencies)),
            delete_before_replace=request.deleteBeforeReplace,
            protect=request.protect,
            replace_on_changes=sorted(request.replaceOnChanges),
            delete_before_replace_defined=request.deleteBeforeReplaceDefined,
            ignore_changes=sorted(request.ignoreChanges),
            property_dependencies={
                key: sorted(set(deps.urns)) for key, deps in request.propertyDependencies.items() if deps.urns
            },
            deleted_with=request.deletedWith,
        )
        self._current.registration = registration
        self._current.secret_outputs = set(request.additionalSecretOutputs)
        response = super().RegisterResource(request)  # type: ignore[no-untyped-call]
        with self._lock:
            self.run.resources.append(registration)
        return response

    def secret_outputs(self) -> set[str]:
        """The registering resource's additionalSecretOutputs (private keys): the engine makes them secret."""
        return set(getattr(self._current, "secret_outputs", set()))


class _WithSecretOutputs(pulumi_mocks.Mocks):
    """Marks the outputs a resource declares secret (additionalSecretOutputs), as the engine does."""

    def __init__(self, inner: pulumi_mocks.Mocks, monitor: RecordingMonitor) -> None:
        self.inner, self.monitor = inner, monitor

    def new_resource(self, args: pulumi_mocks.MockResourceArgs) -> tuple[str | None, dict[Any, Any]]:
        resource_id, state = self.inner.new_resource(args)
        for key in self.monitor.secret_outputs() & set(state):
            if not (isinstance(state[key], dict) and state[key].get(SECRET_SIG) == SECRET_VALUE_SIG):
                state[key] = {SECRET_SIG: SECRET_VALUE_SIG, "value": state[key]}
        return resource_id, state

    def call(self, args: pulumi_mocks.MockCallArgs) -> Any:
        return self.inner.call(args)


def whole_numbers(value: Any) -> Any:
    """Protobuf carries every number as a double: give whole ones back as ints (ports, memory)."""
    if isinstance(value, dict):
        return {k: whole_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [whole_numbers(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def unreached_main() -> None:
    """The program as `pulumi up` runs it, but dialling no engine: under mocks there is none."""
    main(reach=lambda engine, stack, key: None)


def run_program(
    stack: str,
    config: Mapping[str, str],
    secret_keys: set[str],
    mocks: pulumi_mocks.Mocks,
    program: Callable[[], None] | None = None,
    monitor: RecordingMonitor | None = None,
) -> Run:
    """Run the program (default: infra.program.main) as stack `stack` and return what it registered.

    Raises whatever the program raises (a ConfigError, or a failure inside an output).
    """
    runtime_settings.reset_options(project=PROJECT, stack=stack, preview=False)
    monitor = monitor or RecordingMonitor(mocks)
    if hasattr(mocks, "monitor"):  # mocks that honour resource options (ProgramMocks) read them here
        mocks.monitor = monitor
    pulumi.runtime.set_mocks(mocks, project=PROJECT, stack=stack, preview=False, monitor=monitor)
    pulumi.runtime.set_all_config(dict(config), sorted(secret_keys))

    def program_with_outputs() -> pulumi.Output[None]:
        (program or unreached_main)()
        # Under mocks the stack never registers its outputs: read them off the root resource.
        root = runtime_settings.get_root_resource()
        exported = getattr(root, "outputs", {})
        return pulumi.Output.from_input(exported).apply(monitor.run.outputs.update)

    pulumi.runtime.test(program_with_outputs)()  # type: ignore[no-untyped-call]
    return monitor.run


class ProgramMocks(Mocks):
    """Deterministic outputs that change exactly when the real ones would.

    An image's digest follows its build context (the Dockerfile and every file .dockerignore lets
    through); a resource's id follows its inputs (the ignored ones aside); so a test sees a rebuild
    or a change reach what depends on it.
    """

    monitor: RecordingMonitor | None = None

    def new_resource(self, args: MockResourceArgs) -> tuple[str, dict[str, Any]]:
        state = dict(args.inputs)
        ignored = set(self.monitor.current().ignore_changes) if self.monitor else set()
        if args.typ == IMAGE:
            digest = f"sha256:plan-{context_digest(args.inputs)[:16]}"
            # Pushed, the digest the registry returned, by repository; local, the image id.
            repository = str(args.inputs["imageName"]).rsplit(":", 1)[0]
            state["repoDigest"] = digest if args.inputs.get("skipPush") else f"{repository}@{digest}"
        elif args.typ == REMOTE_IMAGE:
            state["imageId"] = f"sha256:plan-{_digest(args.inputs['name'])}"
            # The digest the engine recorded: the one the reference names, or else the pulled manifest's.
            name = str(args.inputs["name"])
            state["repoDigest"] = name if "@sha256:" in name else f"{name.rsplit(':', 1)[0]}@{state['imageId']}"
        elif args.typ.startswith("tls:"):
            # Stand-in PEMs: what a reviewer needs is which resource feeds which, not key material.
            for output in ("privateKeyPem", "publicKeyPem", "certPem", "certRequestPem"):
                state[output] = f"-----BEGIN PLAN {output}-----{args.name}-----END-----\n"
        elif args.typ == CONTAINER and not args.inputs.get("mustRun", True):
            state.update(exitCode=0, containerLogs="")
        kept = {k: v for k, v in whole_numbers(dict(args.inputs)).items() if k not in ignored}
        resource_id = f"{args.name}-{_digest(reveal(kept))}"
        if args.typ in (SECRET, SERVICE_CONFIG, CONTAINER) and "name" not in state:
            state["name"] = resource_id  # Pulumi's generated name: new with every replacement
        return resource_id, state

    def call(self, args: MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]] | None]:
        raise NotImplementedError(f"the program makes no provider calls (got {args.token})")


def context_digest(inputs: Mapping[str, Any]) -> str:
    """SHA-256 over an Image's Dockerfile and the build context's files that .dockerignore lets
    through, with each file's mode as git records it (644 or 755), so no machine's umask shows."""
    build = dict(inputs.get("build") or {})
    context = PROJECT_DIR / str(build.get("context", "."))
    dockerfile = PROJECT_DIR / str(build.get("dockerfile") or f"{build.get('context', '.')}/Dockerfile")
    ignore = context / ".dockerignore"
    patterns = [p for p in ignore.read_text().splitlines() if p.strip()] if ignore.is_file() else []
    digest = hashlib.sha256(dockerfile.read_bytes())
    for relative in sorted(docker.utils.build.exclude_paths(str(context), patterns)):
        path = context / relative
        if path.is_file():
            executable = "755" if path.stat().st_mode & 0o111 else "644"
            digest.update(f"{relative}:{executable}:".encode() + hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:8]


def stack_file(stack: str) -> Path:
    return PROJECT_DIR / f"Pulumi.{stack}.yaml"


def stack_config(stack: str, secrets: Mapping[str, str] | None = None) -> tuple[dict[str, str], set[str]]:
    """The committed config of `stack` as the engine passes it: string values and secret keys.

    `secure:` values cannot be decrypted without the Pulumi CLI; they, and keys absent from the
    file, take their values from `secrets` (key without project prefix -> value).
    """
    document = yaml.safe_load(stack_file(stack).read_text()) or {}
    config: dict[str, str] = {}
    secret_keys: set[str] = set()
    for key, value in (document.get("config") or {}).items():
        full_key = key if ":" in key else f"{PROJECT}:{key}"
        if isinstance(value, dict) and "secure" in value:
            secret_keys.add(full_key)
            short = full_key.split(":", 1)[1]
            if secrets is None or short not in secrets:
                raise KeyError(f"{full_key} is a secure value in {stack_file(stack).name}: give a test value for it")
            config[full_key] = secrets[short]
        else:
            # The engine hands every value over as a string; structured values as JSON.
            config[full_key] = value if isinstance(value, str) else json.dumps(value)
    for short, value in (secrets or {}).items():
        full_key = f"{PROJECT}:{short}"
        if full_key not in config:
            config[full_key] = value
            secret_keys.add(full_key)
    return config, secret_keys


# Test values for the secrets: never real, and distinctive so a leak is easy to grep for.
TEST_SECRETS = {
    "postgresPassword": "pg-test-5c2f0e1d",
    "redisPassword": "redis-test-9a7b3c4e",
    "flaskSecretKey": "flask-test-1f8e6d2a",
    # Used only where a test sets backupOffsiteEndpoint (the bucket of tests/integration's offsite_bucket).
    "backupOffsiteAccessKeyId": "offsite-id-test-3d9a",
    "backupOffsiteSecretAccessKey": "offsite-key-test-7e41b08c",
}


def committed_config(
    stack: str, overrides: Mapping[str, str] | None = None, secrets: Mapping[str, str] | None = None
) -> tuple[dict[str, str], set[str]]:
    """The committed stack file's config with test secrets, plus `overrides` (short key -> value)."""
    config, secret_keys = stack_config(stack, TEST_SECRETS if secrets is None else secrets)
    for key, value in (overrides or {}).items():
        config[f"{PROJECT}:{key}"] = value
    return config, secret_keys
