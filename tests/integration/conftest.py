"""Integration tests run against a real Docker engine (installed and started by .ci/run).

Without an engine they skip locally with a loud reason; in CI (CI=true) they fail instead.
Stand-in images are built once, cached by content (tests/standins/build.sh).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.client import HTTPConnection, HTTPSConnection
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import pytest

from infra.config import PROJECT_DIR, Identity, StackSettings
from infra.profiles import PROFILES
from proof.engine.deployer import MARKER, DockerEngine, UpResult
from proof.mocks import Run
from tests.conftest import TEST_SECRETS, committed_config
from tests.integration.machine import MachineProblem, host_address

T = TypeVar("T")

DOCKER = os.environ.get("DOCKER_BIN", "/usr/bin/docker")  # the client that can build with BuildKit
APP_DIR = PROJECT_DIR / "app"
TEST_LABEL = "ichrisbirch.test=1"
FIGURES: list[str] = []


def docker(*args: str, check: bool = True, timeout: float = 600, **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [DOCKER, *args],
        capture_output=True,
        text=True,
        check=check,
        timeout=timeout,
        env={**os.environ, "DOCKER_BUILDKIT": "1"},
        **kwargs,  # type: ignore[arg-type]
    )


def engine_problem() -> str | None:
    if not Path(DOCKER).exists():
        return f"{DOCKER} not found (apt-get install docker.io)"
    try:
        result = docker("info", "--format", "{{.ServerVersion}}", check=False, timeout=20)
    except subprocess.TimeoutExpired:
        return "docker info timed out"
    return None if result.returncode == 0 else f"no Docker engine answers: {result.stderr.strip()}"


@pytest.fixture(scope="session")
def engine() -> None:
    problem = engine_problem()
    if problem is None:
        clear_an_earlier_run()
        return
    if os.environ.get("CI"):
        pytest.fail(f"CI must run the Docker tests, but {problem}", pytrace=False)
    pytest.skip(f"!!! SKIPPING DOCKER TESTS: {problem}. Start dockerd to run them (CI always does). !!!")


def labelled(label: str) -> list[tuple[str, str]]:
    """(kind, id) of every container, volume and network on the engine that carries `label`."""
    found = []
    for kind in ("container", "volume", "network"):
        listed = docker(kind, "ls", *(["-a"] if kind == "container" else []), "-q", "--filter", f"label={label}")
        found += [(kind, item) for item in listed.stdout.split()]
    return found


def clear_an_earlier_run() -> None:
    """What an interrupted run left (its objects carry the suite's labels; the test swarm its
    folder): removed before anything is deployed, so no test starts on another run's state."""
    left = [item for label in (f"{MARKER[0]}={MARKER[1]}", TEST_LABEL) for item in labelled(label)]
    removal = {"container": ("rm", "-f", "-v"), "volume": ("rm", "-f"), "network": ("rm",)}
    for kind, command in removal.items():  # containers first: they hold the others
        ids = [item for k, item in left if k == kind]
        if ids:
            docker(kind, *command, *ids)
    if left:
        report(f"removed what an earlier run left on the engine: {len(left)} objects")
    if Path("/tmp/icb-swarm").exists():
        down = subprocess.run(["bash", str(PROJECT_DIR / "tests" / "swarm" / "down.sh")], capture_output=True,
                              text=True, timeout=300, check=False)  # fmt: skip
        assert down.returncode == 0, f"removing an earlier run's test swarm failed:\n{down.stdout}{down.stderr}"
        report("removed an earlier run's test swarm")


@dataclass(frozen=True)
class Standins:
    """Local images for the references nothing here can pull, each under its stack config key."""

    python: str
    postgres: str
    redis: str
    haproxy: str
    caddy: str
    rclone: str

    KEYS: ClassVar[dict[str, str]] = {
        "python": "pythonBaseImage",
        "postgres": "postgresImage",
        "redis": "redisImage",
        "haproxy": "haproxyImage",
        "caddy": "caddyImage",
        "rclone": "rcloneImage",
    }

    @classmethod
    def build(cls) -> Standins:
        """Build what is missing or out of date (tests/standins/build.sh, cached by content): the one
        way the suite and the benchmark get their images."""
        result = subprocess.run(
            ["bash", str(PROJECT_DIR / "tests" / "standins" / "build.sh")], capture_output=True, text=True, timeout=1200
        )
        if result.returncode != 0:
            raise RuntimeError(f"building the stand-in images failed:\n{result.stdout}\n{result.stderr}")
        refs = dict(line.strip().split("=", 1) for line in result.stdout.splitlines() if "Image=" in line)
        missing = sorted(set(cls.KEYS.values()) - set(refs))
        if missing:
            raise RuntimeError(f"tests/standins/build.sh printed no reference for {missing}:\n{result.stdout}")
        return cls(**{name: refs[key] for name, key in cls.KEYS.items()})

    def config(self) -> dict[str, str]:
        """The stack config that points every image reference at its stand-in."""
        return {key: getattr(self, name) for name, key in self.KEYS.items()}


@pytest.fixture(scope="session")
def standins(engine: None) -> Standins:
    try:
        return Standins.build()
    except RuntimeError as failure:
        pytest.fail(str(failure), pytrace=False)


@dataclass(frozen=True)
class Bucket:
    """An S3-compatible bucket off the stacks' networks: `rclone serve s3` on the host's network,
    which the stacks' containers reach through their gateway, as they would a bucket elsewhere."""

    container: str
    endpoint: str
    name: str = "icb-test-backups"

    def settings(self) -> dict[str, str]:
        return {"backupOffsiteEndpoint": self.endpoint, "backupOffsiteBucket": self.name}

    def objects(self, prefix: str) -> dict[str, str]:
        """The objects under `prefix`, by name, with the SHA-256 of their bytes as the bucket holds them."""
        folder = f"/srv/{self.name}/{prefix}"
        script = f'cd "{folder}" 2>/dev/null || exit 0; for f in *; do [ ! -e "$f" ] || sha256sum "$f"; done'
        listed = docker("exec", self.container, "sh", "-c", script)
        return {name: digest for digest, name in (line.split() for line in listed.stdout.splitlines())}


@pytest.fixture(scope="session")
def offsite_bucket(standins: Standins) -> Iterator[Bucket]:
    # The default bridge's address on the host: every container on the engine can reach it.
    try:
        gateway = host_address([DOCKER])
    except MachineProblem as problem:
        pytest.fail(f"the stand-in bucket needs the host's address on the default bridge: {problem}", pytrace=False)
    port = free_port()
    container = "icb-test-offsite-bucket"
    docker("rm", "-f", container, check=False)
    docker(
        "run", "-d", "--name", container, "--label", TEST_LABEL, "--network", "host",
        # The keys in the environment of this stand-in bucket only, not on its command line.
        "-e", f"BUCKET_KEYS={TEST_SECRETS['backupOffsiteAccessKeyId']},{TEST_SECRETS['backupOffsiteSecretAccessKey']}",
        "--entrypoint", "sh", standins.rclone, "-c",
        f'mkdir -p "/srv/{Bucket.name}" && exec rclone serve s3 --auth-key "$BUCKET_KEYS" --addr {gateway}:{port} /srv',
    )  # fmt: skip
    bucket = Bucket(container, f"http://{gateway}:{port}")

    def listening() -> bool | None:
        with socket.socket() as s:
            if s.connect_ex((gateway, port)) == 0:
                return True
        if docker("inspect", "-f", "{{.State.Running}}", container).stdout.strip() != "true":
            logs = docker("logs", container, check=False)
            stopped = f"the stand-in bucket stopped at once on {gateway}:{port}: {logs.stderr[-2000:]}"
            pytest.fail(stopped, pytrace=False)
        return None

    try:
        until(listening, 30, f"the stand-in bucket listening on {gateway}:{port}")
        yield bucket
    finally:
        docker("rm", "-f", container, check=False)


@dataclass(frozen=True)
class Build:
    tag: str
    seconds: float
    log: str


def build_image(context: Path, target: str, tag: str, base: str, *extra: str) -> Build:
    started = time.monotonic()
    result = docker(
        "build",
        "--progress=plain",
        "--target",
        target,
        "--build-arg",
        f"PYTHON_BASE_IMAGE={base}",
        "--label",
        TEST_LABEL,
        "-t",
        tag,
        *extra,
        str(context),
        check=False,
        timeout=1200,
    )
    seconds = time.monotonic() - started
    assert result.returncode == 0, f"building {target} failed:\n{result.stderr[-4000:]}"
    return Build(tag, seconds, result.stderr)  # BuildKit's plain progress goes to stderr


@pytest.fixture(scope="session")
def images(standins: Standins) -> dict[str, Build]:
    """Both targets of app/Dockerfile, built with BuildKit from the stand-in base."""
    return {
        target: build_image(APP_DIR, target, f"ichrisbirch-test:{target}", standins.python)
        for target in ("development", "production")
    }


def report(line: str) -> None:
    """A figure to print at the end of the run (image sizes, build times, time to healthy)."""
    FIGURES.append(line)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if FIGURES:
        terminalreporter.section("figures")
        for line in FIGURES:
            terminalreporter.write_line(line)


@pytest.fixture
def scratch_network() -> Iterator[str]:
    """A private network for one test; removed with every container on it afterwards."""
    name = f"icb-itest-{os.getpid()}-{time.monotonic_ns() % 100000}"
    docker("network", "create", "--label", TEST_LABEL, name)
    yield name
    containers = docker("ps", "-aq", "--filter", f"network={name}").stdout.split()
    if containers:
        docker("rm", "-f", "-v", *containers, check=False)
    docker("network", "rm", name, check=False)


def copy_app(destination: Path) -> Path:
    shutil.copytree(APP_DIR, destination, ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache"))
    return destination


# --- deploying a stack through the program ------------------------------------------------------


def port_is_free(port: int) -> bool:
    with socket.socket() as s:
        # As Docker's port proxy does: connections lingering in TIME_WAIT do not make a port taken.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Deployed:
    """A stack deployed by the test engine: run `up()` again to go on from the state it left."""

    stack: str
    engine: DockerEngine
    config: dict[str, str]
    secret_keys: set[str]
    ports: dict[str, int]
    app_dir: Path  # this deployment's own copy of app/ (its appDirectory): edit it to change the source
    last: UpResult

    @property
    def run(self) -> Run:
        assert self.last.run is not None
        return self.last.run

    def up(
        self, *, replace: tuple[str, ...] = (), program: Callable[[], None] | None = None, **overrides: str
    ) -> UpResult:
        """`pulumi up` again with config `overrides` (short key -> value), from the last run's state."""
        config = {**self.config, **{f"ichrisbirch:{key}": value for key, value in overrides.items()}}
        self.last = self.engine.up(self.stack, config, self.secret_keys, replace=replace, program=program)
        self.config = config
        return self.last

    @property
    def ingress(self) -> bool:
        return PROFILES[self.config["ichrisbirch:environment"]].ingress

    def url(self, service: str, path: str = "") -> str:
        """Where a request for `service` goes: through the ingress (HTTPS) where the stack has one."""
        if self.ingress and service in ("api", "app"):
            return f"https://127.0.0.1:{self.ports['ingress_https']}{path}"
        return f"http://127.0.0.1:{self.ports[service]}{path}"

    def host(self, service: str) -> str | None:
        """The Host header the ingress routes on (the app at <domain>, the api at api.<domain>)."""
        if not self.ingress:
            return None
        domain = self.config.get("ichrisbirch:domain", "localhost")
        return domain if service == "app" else f"{service}.{domain}"

    def http(
        self, method: str, service: str, path: str = "", body: dict[str, object] | None = None, **kwargs: Any
    ) -> tuple[int, str]:
        ca = self.run.outputs.get("ingress_ca_certificate") if self.ingress else None
        return http(method, self.url(service, path), body=body, host=self.host(service), ca=ca, **kwargs)

    def keepalive(self) -> KeepAlive:
        """A client that keeps its connections open, to the ingress (HTTPS) or the published ports."""
        if not self.ingress:
            return KeepAlive(lambda service, timeout: HTTPConnection("127.0.0.1", self.ports[service], timeout=timeout))
        ca = self.run.outputs["ingress_ca_certificate"]
        return keepalive_https("127.0.0.1", self.ports["ingress_https"], ca, lambda service: str(self.host(service)))

    def container(self, service: str) -> str:
        """The container's name now: from state (a create-first container's name changes with it)."""
        for resource in self.engine.resources.values():
            if resource.type == "docker:index/container:Container" and resource.name == service:
                return str(resource.state["name"])
        return Identity(self.stack).container(service)


@contextmanager
def deploy(stack: str, standins: Standins, **settings: str) -> Iterator[Deployed]:
    """Deploy `stack` from its committed stack file on the real engine; remove all of it afterwards.

    Overrides: the image references (local stand-ins), test secrets, a copy of app/ as the
    application, and a host port only where the committed one is taken on this machine.
    """
    workspace = Path(tempfile.mkdtemp(prefix=f"icb-{stack}-"))
    workspace.chmod(0o755)  # the dev stack bind-mounts the copied source into containers running as 10001
    app_dir = copy_app(workspace / "app")
    overrides = {**standins.config(), "appDirectory": str(app_dir), **settings}
    config, secret_keys = committed_config(stack, overrides)
    ports: dict[str, int] = {}
    published = (("api", "api"), ("app", "app"), ("postgres", "postgres"), ("redis", "redis"))
    for service, field_name in (*published, ("ingress", "http"), ("ingress_https", "https")):
        key = f"ichrisbirch:{field_name}Port"
        port = int(config.get(key, StackSettings.model_fields[f"{field_name}_port"].default))
        if not port_is_free(port):
            port = free_port()
            config[key] = str(port)
            report(f"{stack}: host port {config[key]} used for {service} (the committed one is taken here)")
        ports[service] = port
    engine = DockerEngine(workspace / "state.json")
    try:
        first = engine.up(stack, config, secret_keys)
        report(
            f"{stack}: first resource to all healthy {engine.time_to_healthy():.1f} s "
            f"(image build {first.timings.build_seconds:.1f} s of it)"
        )
        yield Deployed(stack, engine, config, secret_keys, ports, app_dir, first)
    finally:
        engine.sweep()
        shutil.rmtree(workspace, ignore_errors=True)


def http(
    method: str,
    url: str,
    body: dict[str, object] | None = None,
    form: dict[str, str] | None = None,
    timeout: float = 5,
    host: str | None = None,
    ca: str | None = None,
) -> tuple[int, str]:
    """One request to a published port on 127.0.0.1: (status, body text).

    `host`: the Host header, and with https the name the certificate must carry (SNI), verified
    against `ca` (PEM).
    """
    assert url.startswith(("http://127.0.0.1:", "https://127.0.0.1:")), "tests reach containers only on 127.0.0.1"
    if url.startswith("https://"):
        assert host and ca, "HTTPS needs the host name to verify and the CA to verify it with"
        return https(method, url, host, ca, body, timeout)
    data, headers = None, {}
    if body is not None:
        data, headers = json.dumps(body).encode(), {"Content-Type": "application/json"}
    elif form is not None:
        data = urllib.parse.urlencode(form).encode()
    if host:
        headers["Host"] = host
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


class _PinnedHTTPSConnection(HTTPSConnection):
    """Connects to `address` but presents and verifies `host` (SNI and certificate name)."""

    def __init__(self, address: str, host: str, port: int, context: ssl.SSLContext, timeout: float) -> None:
        super().__init__(host, port, context=context, timeout=timeout)
        self._address, self._tls = address, context

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._tls.wrap_socket(sock, server_hostname=self.host)


def https_to(
    address: str,
    port: int,
    method: str,
    path: str,
    host: str,
    ca: str,
    body: dict[str, object] | None = None,
    timeout: float = 5,
) -> tuple[int, str]:
    """One HTTPS request to `address`:`port` for `host`, verified against `ca` (PEM): (status, body).

    http.client reads the whole answer: a body cut short of its Content-Length (or its last chunk)
    raises IncompleteRead, a connection closed without an answer RemoteDisconnected.
    """
    context = ssl.create_default_context(cadata=ca)
    connection = _PinnedHTTPSConnection(address, host, port, context, timeout)
    try:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"} if body is not None else {}
        connection.request(method, path or "/", body=data, headers=headers)
        response = connection.getresponse()
        return response.status, response.read().decode()
    finally:
        connection.close()


class KeepAlive:
    """A client that keeps its connection open between requests, as browsers and SDKs do: one
    connection per service (Host), opened again only after the server said it would close it
    (`Connection: close`) or after a failure. A request that fails on a reused connection is a
    failure: it is not sent again."""

    def __init__(
        self, connect: Callable[[str, float], HTTPConnection], host_of: Callable[[str], str | None] = lambda _: None
    ) -> None:
        self._connect = connect  # service, timeout -> a new connection for that service
        self._host_of = host_of  # service -> a Host header where the connection's own host is not it
        self._open: dict[str, HTTPConnection] = {}

    def http(
        self, method: str, service: str, path: str = "", body: dict[str, object] | None = None, timeout: float = 5
    ) -> tuple[int, str]:
        connection = self._open.get(service) or self._connect(service, timeout)
        self._open[service] = connection
        try:
            data = json.dumps(body).encode() if body is not None else None
            headers = {"Content-Type": "application/json"} if body is not None else {}
            host = self._host_of(service)
            if host:
                headers["Host"] = host
            connection.request(method, path or "/", body=data, headers=headers)
            response = connection.getresponse()
            text = response.read().decode()
        except BaseException:
            self.close(service)
            raise
        if response.will_close:
            self.close(service)
        return response.status, text

    def close(self, service: str | None = None) -> None:
        for name in [service] if service else list(self._open):
            connection = self._open.pop(name, None)
            if connection is not None:
                connection.close()


def keepalive_https(address: str, port: int, ca: str, host_of: Callable[[str], str]) -> KeepAlive:
    """A keep-alive client of an ingress at `address`:`port`, each service by its host name (SNI,
    certificate and Host), verified against `ca`."""
    context = ssl.create_default_context(cadata=ca)
    return KeepAlive(lambda service, timeout: _PinnedHTTPSConnection(address, host_of(service), port, context, timeout))


def https(
    method: str, url: str, host: str, ca: str, body: dict[str, object] | None = None, timeout: float = 5
) -> tuple[int, str]:
    parsed = urllib.parse.urlsplit(url)
    return https_to("127.0.0.1", parsed.port or 443, method, parsed.path, host, ca, body, timeout)


def until(check: Callable[[], T | None], timeout: float, what: str, interval: float = 0.5) -> T:
    """Poll `check` until it returns a value, at most `timeout` seconds; bounded, stops by itself."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = check()
            if result is not None:
                return result
        except (OSError, urllib.error.URLError) as error:
            last_error = error
        time.sleep(interval)
    raise AssertionError(f"{what}: not within {timeout} s" + (f" (last error: {last_error})" if last_error else ""))


def inspect_container(name: str) -> dict[str, Any]:
    return dict(json.loads(docker("inspect", name).stdout)[0])


def assert_no_secret_leak(deployed: Deployed) -> None:
    """No secret value of the stack's config in the app image's history or config, or any container's logs."""
    image = f"ichrisbirch:{deployed.stack}"
    texts = {
        "image history": docker("history", "--no-trunc", image).stdout,
        "image config": docker("image", "inspect", image).stdout,
    }
    for name in deployed.run.outputs["containers"].values():
        logs = docker("logs", name, check=False)
        texts[f"logs of {name}"] = logs.stdout + logs.stderr
    leaks = [where for where, text in texts.items() if any(secret in text for secret in TEST_SECRETS.values())]
    assert leaks == [], f"a secret value of the {deployed.stack} stack appears in: {leaks}"


@pytest.fixture(scope="session", autouse=True)
def nothing_left_behind() -> Iterator[None]:
    """After the suite, no container, network or volume created by it remains on the engine."""
    yield
    if engine_problem() is not None:
        return
    leftovers = [
        f"{kind} {item}" for label in (f"{MARKER[0]}={MARKER[1]}", TEST_LABEL) for kind, item in labelled(label)
    ]
    assert not leftovers, f"the suite left these behind: {leftovers}"
