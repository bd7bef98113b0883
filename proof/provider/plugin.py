"""The provider model served to the real Pulumi engine as a resource plugin.

The docker and tls provider plugins cannot be built on the machines this project is tested on (their
Go modules are not served here; docs/testing.md says what was tried), so the real `pulumi` CLI
loads this gRPC server in their place, as `pulumi-resource-docker` and `pulumi-resource-tls` at the
versions the Python SDKs ask for. The engine (step order, replacement, the delete-first cascade,
pending deletes, protect, refresh, state) is the real one; only what each provider call does is
ours: the handlers in `proof/provider/handlers/`, written from the providers' source.

    python -m proof.provider.plugin docker|tls ENGINE_ADDRESS
"""

from __future__ import annotations

import os
import secrets
import sys
import threading
import traceback
from collections.abc import Callable, Mapping
from concurrent import futures
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any, TypeVar

import grpc
from google.protobuf import any_pb2, empty_pb2, struct_pb2
from google.protobuf.json_format import MessageToDict
from google.rpc import status_pb2
from pulumi.runtime.proto import plugin_pb2, provider_pb2, provider_pb2_grpc

from proof import provider
from proof.provider.handlers import handlers_of
from proof.provider.handlers.base import LOCAL_ENGINE, Docker, Handler, ProviderError, Resource
from proof.provider.handlers.docker_provider import ProviderHandler
from proof.provider.schema import PROVIDER

UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"  # the engine's sentinel for a value not known in preview
DEFAULTS_KEY = "__defaults"  # the bridge's record, in checked inputs, of the fields Check filled in
PACKAGES = {"docker": "pulumi-docker", "tls": "pulumi-tls"}

Response = TypeVar("Response")


def to_plain(struct: struct_pb2.Struct | None) -> dict[str, Any]:
    """A property struct as plain values; protobuf carries every number as a double."""
    if struct is None:
        return {}
    return dict(whole_numbers(MessageToDict(struct)))


def whole_numbers(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: whole_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [whole_numbers(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def to_struct(values: Mapping[str, Any]) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    struct.update(dict(values))
    return struct


def has_unknown(value: Any) -> bool:
    if isinstance(value, dict):
        return any(has_unknown(v) for v in value.values())
    if isinstance(value, list):
        return any(has_unknown(v) for v in value)
    return bool(value == UNKNOWN)


class Provider(provider_pb2_grpc.ResourceProviderServicer):
    """One provider instance, as the engine starts one plugin process per provider resource."""

    def __init__(self, package: str) -> None:
        self.package = package
        self.handlers = handlers_of(package)
        self.host = os.environ.get("DOCKER_HOST", LOCAL_ENGINE)
        self.workdir = Path.cwd()  # the engine starts plugins in the program's directory
        self.config: dict[str, Any] = {}

    # --- the plugin ------------------------------------------------------------------------------

    def GetPluginInfo(self, request: empty_pb2.Empty, context: grpc.ServicerContext) -> plugin_pb2.PluginInfo:
        return plugin_pb2.PluginInfo(version=package_version(PACKAGES[self.package]))

    def Handshake(
        self, request: provider_pb2.ProviderHandshakeRequest, context: grpc.ServicerContext
    ) -> provider_pb2.ProviderHandshakeResponse:
        # Its program_directory is the plugin's own folder: builds resolve from the working directory,
        # which the engine sets to the program's.
        return provider_pb2.ProviderHandshakeResponse(
            accept_secrets=False, accept_resources=False, supports_autonaming_configuration=True
        )

    def GetSchema(self, request: Any, context: grpc.ServicerContext) -> Any:
        context.abort(grpc.StatusCode.UNIMPLEMENTED, "the stand-in provider serves no schema")

    def CheckConfig(self, request: provider_pb2.CheckRequest, context: grpc.ServicerContext) -> Any:
        return provider_pb2.CheckResponse(inputs=request.news)

    def DiffConfig(self, request: provider_pb2.DiffRequest, context: grpc.ServicerContext) -> Any:
        olds, news = to_plain(request.olds), to_plain(request.news)
        changed = sorted(k for k in set(olds) | set(news) if k != "version" and olds.get(k) != news.get(k))
        if not changed:
            return provider_pb2.DiffResponse(changes=provider_pb2.DiffResponse.DIFF_NONE)
        # A provider pointed at another engine: its resources cannot follow it there in place.
        return provider_pb2.DiffResponse(changes=provider_pb2.DiffResponse.DIFF_SOME, diffs=changed, replaces=changed)

    def Configure(self, request: provider_pb2.ConfigureRequest, context: grpc.ServicerContext) -> Any:
        self.config = to_plain(request.args) if request.HasField("args") else dict(request.variables)
        return self._call(context, lambda: self._configure())

    def _configure(self) -> provider_pb2.ConfigureResponse:
        configuring = self.handlers.get(PROVIDER)
        if isinstance(configuring, ProviderHandler):
            self.host = configuring.configure(self.config)
        return provider_pb2.ConfigureResponse(
            acceptSecrets=False, supportsPreview=False, supports_autonaming_configuration=True
        )

    def Cancel(self, request: empty_pb2.Empty, context: grpc.ServicerContext) -> empty_pb2.Empty:
        return empty_pb2.Empty()

    def Invoke(self, request: provider_pb2.InvokeRequest, context: grpc.ServicerContext) -> Any:
        context.abort(grpc.StatusCode.UNIMPLEMENTED, f"function {request.tok} is not modelled by the stand-in provider")

    # --- resources -------------------------------------------------------------------------------

    def Check(self, request: provider_pb2.CheckRequest, context: grpc.ServicerContext) -> Any:
        def check() -> provider_pb2.CheckResponse:
            type_token = _type_of(request.urn)
            handler = self._handler(type_token)
            olds, news = to_plain(request.olds), to_plain(request.news)
            autonamed = handler.autonamed and "name" not in news
            if autonamed:
                news = {**news, "name": self._autoname(request, olds)}
            checked = handler.check(type_token, _without_defaults(news), self._engine())
            if autonamed:
                checked = {**checked, DEFAULTS_KEY: ["name"]}
            return provider_pb2.CheckResponse(inputs=to_struct(checked))

        return self._call(context, check)

    @staticmethod
    def _autoname(request: provider_pb2.CheckRequest, olds: Mapping[str, Any]) -> str:
        """The bridge's AutoName: an update keeps the old name (the engine checks a replacement again
        without the old inputs, so the new object gets a new one); else the engine's proposed name
        (the project's `pulumi:autonaming` pattern), or `<name>-<7 hex>`."""
        if olds.get("name") and DEFAULTS_KEY in olds:
            return str(olds["name"])
        autonaming = request.autonaming if request.HasField("autonaming") else None
        if autonaming is not None and autonaming.mode == autonaming.DISABLE:
            raise ProviderError(f"{request.name}: autonaming is disabled and the program gives no name")
        if autonaming is not None and autonaming.proposed_name:
            return autonaming.proposed_name
        return f"{request.name}-{secrets.token_hex(4)[:7]}"

    def Diff(self, request: provider_pb2.DiffRequest, context: grpc.ServicerContext) -> Any:
        def diff() -> provider_pb2.DiffResponse:
            type_token = _type_of(request.urn)
            handler = self._handler(type_token)
            state, news = to_plain(request.olds), to_plain(request.news)
            old_inputs = to_plain(request.old_inputs) if request.HasField("old_inputs") else state
            recorded = old_inputs if handler.diffs_inputs else state
            recorded = {k: v for k, v in recorded.items() if k != DEFAULTS_KEY}
            given = {k: v for k, v in news.items() if k != DEFAULTS_KEY}
            unknown = sorted(k for k, v in given.items() if has_unknown(v))
            known = {k: v for k, v in given.items() if k not in unknown}
            if not handler.diffs_inputs:
                known = provider.with_ignored(recorded, known, list(request.ignoreChanges))
            result = handler.diff(type_token, recorded, {**known, **{k: recorded.get(k) for k in unknown}}, [])
            changed = sorted({*_top(result.changed), *unknown})
            replaces = sorted({*_top(result.replaces), *provider.replaced_by_unknowns(type_token, unknown)})
            if not changed:
                return provider_pb2.DiffResponse(changes=provider_pb2.DiffResponse.DIFF_NONE)
            # The bridge deletes first where the provider says so, or where the name is the program's:
            # two objects cannot share it.
            delete_first = bool(replaces) and provider.deletes_before_replace(
                type_token, None, {} if DEFAULTS_KEY in news and "name" in news[DEFAULTS_KEY] else given
            )
            return provider_pb2.DiffResponse(
                changes=provider_pb2.DiffResponse.DIFF_SOME,
                diffs=changed,
                replaces=replaces,
                deleteBeforeReplace=delete_first,
            )

        return self._call(context, diff)

    def Create(self, request: provider_pb2.CreateRequest, context: grpc.ServicerContext) -> Any:
        type_token = _type_of(request.urn)
        inputs = to_plain(request.properties)
        resource = Resource(type_token, request.name or _name_of(request.urn), request.urn, "", inputs, {})

        def create() -> provider_pb2.CreateResponse:
            handler = self._handler(type_token)
            if request.preview:  # nothing is made in a preview: what Create would compute is unknown
                return provider_pb2.CreateResponse(properties=to_struct(inputs))
            resource.id, resource.state = handler.create(resource, _without_defaults(inputs), self._engine())
            return provider_pb2.CreateResponse(id=resource.id, properties=to_struct({**inputs, **resource.state}))

        return self._call(context, create, partial=resource)

    def Read(self, request: provider_pb2.ReadRequest, context: grpc.ServicerContext) -> Any:
        def read() -> provider_pb2.ReadResponse:
            type_token = _type_of(request.urn)
            state = to_plain(request.properties)
            inputs = to_plain(request.inputs)
            resource = Resource(type_token, _name_of(request.urn), request.urn, request.id, inputs, state)
            found = self._handler(type_token).read(resource, self._engine())
            if found is None:  # gone from the engine: the engine drops it from state
                return provider_pb2.ReadResponse(id="")
            return provider_pb2.ReadResponse(id=request.id, properties=to_struct(found), inputs=request.inputs)

        return self._call(context, read)

    def Update(self, request: provider_pb2.UpdateRequest, context: grpc.ServicerContext) -> Any:
        type_token = _type_of(request.urn)
        state, news = to_plain(request.olds), to_plain(request.news)
        old_inputs = to_plain(request.old_inputs) if request.HasField("old_inputs") else state
        old = Resource(type_token, _name_of(request.urn), request.urn, request.id, old_inputs, state)

        def update() -> provider_pb2.UpdateResponse:
            handler = self._handler(type_token)
            if request.preview:
                return provider_pb2.UpdateResponse(properties=to_struct({**state, **news}))
            recorded = old_inputs if handler.diffs_inputs else state
            plain = _without_defaults(news)
            diff = handler.diff(type_token, _without_defaults(recorded), plain, [])
            _, new_state, _ = handler.update(old, plain, diff, self._engine())
            return provider_pb2.UpdateResponse(properties=to_struct({**news, **new_state}))

        return self._call(context, update, partial=old)

    def Delete(self, request: provider_pb2.DeleteRequest, context: grpc.ServicerContext) -> Any:
        def delete() -> empty_pb2.Empty:
            type_token = _type_of(request.urn)
            state = to_plain(request.properties)
            inputs = to_plain(request.old_inputs) if request.HasField("old_inputs") else state
            resource = Resource(type_token, _name_of(request.urn), request.urn, request.id, inputs, state)
            self._handler(type_token).delete(resource, {**state, **_without_defaults(inputs)}, self._engine())
            return empty_pb2.Empty()

        return self._call(context, delete)

    # --- internals -------------------------------------------------------------------------------

    def _engine(self) -> Docker:
        return Docker(self.workdir, self.host)

    def _handler(self, type_token: str) -> Handler:
        handler = self.handlers.get(type_token)
        if handler is None:
            raise provider.NotModelled(f"resource type {type_token}")
        return handler

    def _call(
        self, context: grpc.ServicerContext, action: Callable[[], Response], partial: Resource | None = None
    ) -> Response:
        """Run a provider call; a failure is a gRPC error the engine shows with the resource. A Create
        or Update whose object exists but failed after (a health wait) reports it as initialization
        failed, so the engine keeps the object in state, as the bridge does."""
        try:
            return action()
        except provider.NotModelled as error:
            context.abort(grpc.StatusCode.UNKNOWN, f"{error} is not modelled by the stand-in provider")
        except ProviderError as error:
            if partial is not None and partial.id and partial.init_error:
                detail = provider_pb2.ErrorResourceInitFailed(
                    id=partial.id, properties=to_struct({**partial.inputs, **partial.state}),
                    reasons=[str(error)], inputs=to_struct(partial.inputs),
                )  # fmt: skip
                packed = any_pb2.Any()
                packed.Pack(detail)
                status = status_pb2.Status(code=grpc.StatusCode.UNKNOWN.value[0], message=str(error), details=[packed])
                context.abort_with_status(_RpcStatus(status))
            context.abort(grpc.StatusCode.UNKNOWN, str(error))
        except Exception:  # anything else is a bug of the stand-in: say where
            context.abort(grpc.StatusCode.UNKNOWN, traceback.format_exc())
        raise AssertionError("unreachable")


class _RpcStatus(grpc.Status):  # type: ignore[misc]
    """A gRPC status with rich details (grpcio-status's rpc_status.to_status, without the package)."""

    def __init__(self, status: status_pb2.Status) -> None:
        self.code = grpc.StatusCode.UNKNOWN
        self.details = status.message
        self.trailing_metadata = (("grpc-status-details-bin", status.SerializeToString()),)


def _type_of(urn: str) -> str:
    return urn.split("::")[-2].split("$")[-1]


def _name_of(urn: str) -> str:
    return urn.split("::")[-1]


def _top(paths: tuple[str, ...] | list[str]) -> list[str]:
    return [path.split(".")[0] for path in paths]


def _without_defaults(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if k != DEFAULTS_KEY}


def serve(package: str) -> None:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=64))
    provider_pb2_grpc.add_ResourceProviderServicer_to_server(Provider(package), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    sys.stdout.write(f"{port}\n")  # the engine reads the port from the first line
    sys.stdout.flush()
    threading.Event().wait()


if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in PACKAGES:
        sys.exit(f"usage: python -m proof.provider.plugin {'|'.join(PACKAGES)} ENGINE_ADDRESS")
    serve(sys.argv[1])
