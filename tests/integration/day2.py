"""Checks of the second and later `pulumi up` of a deployed stack, shared by the per-stack modules.

Each runs the program again through the test engine against the state the previous run left, and
checks what the run did (its steps) and what the engine shows (container ids, data, logs).
"""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pytest

import infra.resources
from infra.services import ServiceSpec
from proof.engine.deployer import UpFailed, UpResult
from proof.provider import CONTAINER
from tests.integration.conftest import DOCKER, Deployed, KeepAlive, inspect_container, report

APP_CONTAINERS = {"migrate", "api", "app", "scheduler", "tests"}


def container_identity(deployed: Deployed) -> dict[str, tuple[str, str]]:
    """Service -> (container id, start time) of every container the stack has on the engine."""
    identity = {}
    for name in deployed.engine.ids(CONTAINER):
        info = inspect_container(deployed.container(name))
        identity[name] = (info["Id"], info["State"]["StartedAt"])
    return identity


def assert_second_up_changes_nothing(deployed: Deployed) -> None:
    before = container_identity(deployed)
    result = deployed.up()
    assert set(result.ops().values()) == {"same"}, result.preview()
    assert container_identity(deployed) == before, "a container was touched by an `up` with nothing changed"
    report(f"{deployed.stack}: second `up` with nothing changed: {len(result.steps)} resources, all `same`")


def assert_env_change_replaces_its_readers(deployed: Deployed, readers: set[str]) -> None:
    """A new heartbeat interval replaces exactly `readers`: written out by the caller, not derived
    from the program, so a program that gives the variable to the wrong containers fails."""
    before = container_identity(deployed)
    current = int(deployed.config.get("ichrisbirch:heartbeatSeconds", "60"))
    result = deployed.up(heartbeatSeconds=str(current + 1))
    assert result.touched("replace") == readers, result.preview()
    assert set(result.ops().values()) == {"same", "replace"}, result.preview()
    after = container_identity(deployed)
    for name in before:
        assert (after[name] != before[name]) == (name in readers), name
    env = inspect_container(deployed.container("scheduler"))["Config"]["Env"]
    assert f"SCHEDULER_HEARTBEAT_SECONDS={current + 1}" in env


def psql(deployed: Deployed, sql: str) -> str:
    """`sql` run in the stack's Postgres container as the application's user; its rows, unaligned."""
    result = subprocess.run(
        [DOCKER, "exec", "-u", "postgres", deployed.container("postgres"), "psql", "-U", "ichrisbirch",
         "-d", "ichrisbirch", "-v", "ON_ERROR_STOP=1", "-Atc", sql],
        capture_output=True, text=True, timeout=600, check=True,
    )  # fmt: skip
    return result.stdout


def job_runs(deployed: Deployed, job: str, seconds_ago: float) -> list[tuple[str, float]]:
    """(runner, when as epoch seconds) of each run of `job` in the last `seconds_ago` seconds, in order."""
    rows = psql(
        deployed,
        f"SELECT runner, extract(epoch FROM ran_at) FROM job_runs WHERE job = '{job}' "
        f"AND ran_at > now() - interval '{seconds_ago:.0f} seconds' ORDER BY ran_at, id",
    )
    return [(runner, float(at)) for runner, at in (line.split("|") for line in rows.splitlines())]


def scheduler_problems(runs: list[tuple[str, float]], interval: float) -> list[str]:
    """What in these runs of an interval job shows two schedulers at once or a job run twice.

    One scheduler at a time means strict order: each runner's runs form one unbroken block, and no
    block begins before the one before it ended. A job run twice means more runs in a runner's
    block than its schedule allows: one on taking over, then one an interval.
    """
    problems = []
    blocks: list[tuple[str, list[float]]] = []
    for runner, at in runs:
        if blocks and blocks[-1][0] == runner:
            blocks[-1][1].append(at)
        else:
            blocks.append((runner, [at]))
    order = [runner for runner, _ in blocks]
    if len(order) != len(set(order)):
        problems.append(f"runners interleave (two schedulers running jobs at once): {order}")
    for runner, times in blocks:
        allowed = int((times[-1] - times[0]) / interval) + 2
        if len(times) > allowed:
            problems.append(
                f"{runner} ran the job {len(times)} times in {times[-1] - times[0]:.1f} s (at most {allowed})"
            )
    return problems


def write_task(deployed: Deployed) -> str:
    title = f"day2 {uuid.uuid4().hex[:8]}"
    status, body = deployed.http("POST", "api", "/tasks", body={"title": title}, timeout=10)
    assert status == 201, body
    return title


def task_titles(deployed: Deployed) -> set[str]:
    status, body = deployed.http("GET", "api", "/tasks", timeout=10)
    assert status == 200, body
    return {task["title"] for task in json.loads(body)}


def edit_source(deployed: Deployed, relative: str, edit: Callable[[str], str]) -> None:
    path = deployed.app_dir / relative
    path.write_text(edit(path.read_text()))


def bump_version(deployed: Deployed) -> str:
    marker = f"0.1.0+day2.{uuid.uuid4().hex[:6]}"
    edit_source(
        deployed, "ichrisbirch/__init__.py", lambda t: re.sub(r'__version__ = ".*"', f'__version__ = "{marker}"', t)
    )
    return marker


def assert_source_change_rolls_out_the_application_only(deployed: Deployed) -> UpResult:
    title = write_task(deployed)
    before = container_identity(deployed)
    version = bump_version(deployed)
    result = deployed.up()
    ops = result.ops()
    assert ops["app-image"] == "update", result.preview()
    application = APP_CONTAINERS & set(ops)
    assert result.touched("replace") == application, result.preview()
    for untouched in ("postgres", "redis", "network", "postgres-image", "redis-image"):
        assert ops[untouched] == "same", (untouched, result.preview())
    after = container_identity(deployed)
    assert after["postgres"] == before["postgres"] and after["redis"] == before["redis"]
    migrate = inspect_container(deployed.container("migrate"))
    assert migrate["Id"] != before["migrate"][0] and migrate["State"]["ExitCode"] == 0, "migrate re-ran and passed"
    status, body = deployed.http("GET", "api", "/", timeout=10)
    assert status == 200 and json.loads(body)["version"] == version, body
    assert title in task_titles(deployed), "data written before the rollout is still there"
    return result


def add_migration(deployed: Deployed, name: str, sql: str) -> None:
    """Append a migration (the next version) to this deployment's copy of the application."""
    source = (deployed.app_dir / "ichrisbirch" / "migrate.py").read_text()
    version = max(int(v) for v in re.findall(r"^    \(\n        (\d+),", source, re.MULTILINE)) + 1
    entry = f'    ({version}, "{name}", """{sql}"""),\n]\n_LOCK_ID'

    def edit(text: str) -> str:
        edited = re.sub(r"\n\]\n_LOCK_ID", "\n" + entry, text, count=1)
        assert edited != text, "migrate.py has the expected shape"
        return edited

    edit_source(deployed, "ichrisbirch/migrate.py", edit)


def replace_migration(deployed: Deployed, old_sql: str, new_sql: str) -> None:
    edit_source(deployed, "ichrisbirch/migrate.py", lambda text: text.replace(old_sql, new_sql))


def failed_up(deployed: Deployed, **kwargs: Any) -> UpFailed:
    with pytest.raises(UpFailed) as failure:
        deployed.up(**kwargs)
    return failure.value


@contextmanager
def program_with(transform: Callable[[list[ServiceSpec]], list[ServiceSpec]]) -> Iterator[None]:
    """Run the program with its service specs changed (a service removed, a health check edited)."""
    original = infra.resources.services
    infra.resources.services = lambda settings, project_dir: transform(original(settings, project_dir))
    try:
        yield
    finally:
        infra.resources.services = original


def without(service: str) -> Callable[[list[ServiceSpec]], list[ServiceSpec]]:
    return lambda specs: [s for s in specs if s.name != service]


def changed(service: str, **fields: Any) -> Callable[[list[ServiceSpec]], list[ServiceSpec]]:
    return lambda specs: [dataclasses.replace(s, **fields) if s.name == service else s for s in specs]


def changed_all(**fields: Any) -> Callable[[list[ServiceSpec]], list[ServiceSpec]]:
    return lambda specs: [dataclasses.replace(s, **fields) for s in specs]


def assert_removing_a_service_deletes_its_container(deployed: Deployed, service: str) -> None:
    before = container_identity(deployed)
    with program_with(without(service)):
        result = deployed.up()
    assert result.ops()[service] == "delete", result.preview()
    assert {op for name, op in result.ops().items() if name != service} == {"same"}, result.preview()
    gone = subprocess.run([DOCKER, "inspect", deployed.container(service)], capture_output=True, check=False)
    assert gone.returncode != 0, f"{deployed.container(service)} still exists"
    after = container_identity(deployed)
    assert after == {k: v for k, v in before.items() if k != service}
    back = deployed.up()
    assert back.ops()[service] == "create", back.preview()


def assert_change_replaces(deployed: Deployed, service: str, field: str, **spec_fields: Any) -> UpResult:
    before = container_identity(deployed)
    with program_with(changed(service, **spec_fields)):
        result = deployed.up()
    assert result.ops()[service] == "replace", result.preview()
    step = next(s for s in result.steps if s.name == service)
    assert field in step.replaces, step.line()
    assert container_identity(deployed)[service] != before[service]
    return result


class LogFollower:
    """`docker logs -f` of a container from now until it is removed: what it said while shutting down."""

    def __init__(self, container: str, workspace: Path) -> None:
        self.path = workspace / f"{container}.log"
        self._file = self.path.open("w")
        self._process = subprocess.Popen(
            [DOCKER, "logs", "-f", "--since", "0s", container], stdout=self._file, stderr=subprocess.STDOUT
        )

    def text(self) -> str:
        try:
            self._process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._process.kill()
        self._file.close()
        return self.path.read_text()


@dataclass
class Outcome:
    at: float  # seconds since the loop started
    what: str  # "GET api /", "GET app /", "POST api /tasks"
    status: int  # 0: no response (refused, reset, timed out, not HTTP)
    version: str = ""
    error: str = ""  # why it failed: the exception's type and words, or what was wrong with the answer
    seconds: float = 0.0  # how long it took to answer (or fail)

    @property
    def ok(self) -> bool:
        return not self.error


@dataclass
class LoadReport:
    outcomes: list[Outcome]
    seconds: float

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.ok]

    @property
    def rate(self) -> float:
        return len(self.outcomes) / self.seconds

    def failures_by_kind(self) -> dict[str, int]:
        """How many requests failed for each reason (the exception's type, or the bad answer)."""
        kinds: dict[str, int] = {}
        for outcome in self.failed:
            kind = outcome.error.split(":", 1)[0]
            kinds[kind] = kinds.get(kind, 0) + 1
        return kinds

    def versions(self) -> list[str]:
        """The api versions that answered, in order, each once per run of answers."""
        seen: list[str] = []
        for outcome in self.outcomes:
            if outcome.version and (not seen or seen[-1] != outcome.version):
                seen.append(outcome.version)
        return seen

    def longest_without_service(self) -> float:
        """The longest time between two successful answers (their completion times), while the loop ran."""
        done = sorted(o.at + o.seconds for o in self.outcomes if o.ok)
        edges = [0.0, *done, self.seconds]
        return max(b - a for a, b in zip(edges, edges[1:], strict=False))

    def slowest(self) -> float:
        return max((o.seconds for o in self.outcomes), default=0.0)

    def first(self, version: str) -> float | None:
        return next((o.at for o in self.outcomes if o.version == version), None)


class HttpTarget(Protocol):
    """What the loop sends through: a deployed stack (its ingress or published ports)."""

    def http(
        self, method: str, service: str, path: str = "", body: dict[str, object] | None = None, timeout: float = 5
    ) -> tuple[int, str]: ...

    def keepalive(self) -> KeepAlive: ...


def judge(method: str, service: str, path: str, status: int, text: str) -> tuple[str, str]:
    """(version, error) of one answer: an answer counts only if it is whole and what was asked for."""
    if (method, status) not in (("GET", 200), ("POST", 201)):
        return "", f"HTTP {status}: {text[:200]}"
    if service == "app":
        return ("", "") if "</html>" in text else ("", f"BodyCutShort: {len(text)} characters, no </html>")
    try:
        answer = json.loads(text)
    except ValueError:
        return "", f"NotJSON: {text[:200]!r}"
    if method == "GET":
        return (str(answer["version"]), "") if isinstance(answer, dict) and "version" in answer else ("", "NoVersion")
    return ("", "") if isinstance(answer, dict) and "id" in answer else ("", f"NoTaskId: {text[:200]!r}")


class LoadLoop:
    """Requests through the ingress while an `up` runs: GETs of an api and an app page and a POST that
    writes, at `rate` a second from `workers` threads (one slow response does not stall the rest).
    `keepalive` of the workers keep their connections open between requests, as browsers and SDKs
    do (a server closing an idle connection under them is a failure they see); the others open one
    per request. Bounded: it stops when told, or after `max_seconds`, or after `max_requests`.

    Every outcome is recorded: any exception is a failed request with its type, and so is an answer
    that is cut short or not what was asked for. A worker that dies fails `report()`, and so does a
    rate under the one the caller states.
    """

    def __init__(
        self,
        deployed: HttpTarget,
        rate: float = 32,
        workers: int = 8,  # enough that slow answers during a rollout do not lower the rate
        keepalive: int = 2,
        max_seconds: float = 240,
        max_requests: int = 10000,
    ):
        self.deployed, self.rate, self.workers, self.keepalive = deployed, rate, workers, keepalive
        self.max_seconds, self.max_requests = max_seconds, max_requests
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._outcomes: list[Outcome] = []
        self._deaths: list[str] = []
        self._threads = [threading.Thread(target=self._worker, args=(i,), daemon=True) for i in range(workers)]

    def __enter__(self) -> LoadLoop:
        self.started = time.monotonic()
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)

    def report(self, *, min_rate: float) -> LoadReport:
        """Stop the loop and return what it saw; fails if a worker died or hung, or the rate fell
        under `min_rate` requests a second (a loop that barely ran proves nothing)."""
        self.__exit__()
        hung = [i for i, thread in enumerate(self._threads) if thread.is_alive()]
        assert not hung, f"load workers {hung} did not stop within 30 s"
        assert not self._deaths, f"load workers died: {self._deaths}"
        with self._lock:
            outcomes = sorted(self._outcomes, key=lambda o: o.at)
        load = LoadReport(outcomes, time.monotonic() - self.started)
        assert load.rate >= min_rate, f"{load.rate:.1f} requests a second, under {min_rate} ({len(outcomes)} in all)"
        return load

    def _worker(self, worker: int) -> None:
        try:
            self._run(worker)
        except BaseException as death:  # noqa: BLE001 - recorded, and report() fails on it
            self._deaths.append(f"worker {worker}: {type(death).__name__}: {death}")

    def _run(self, worker: int) -> None:
        requests = [("GET", "api", "/"), ("GET", "app", "/"), ("POST", "api", "/tasks")]
        interval = self.workers / self.rate
        deadline = self.started + self.max_seconds
        client = self.deployed.keepalive() if worker < self.keepalive else None
        send = client.http if client is not None else self.deployed.http
        how = " (keep-alive)" if client is not None else ""
        n = 0
        try:
            while not self._stop.is_set() and time.monotonic() < deadline and n * self.workers < self.max_requests:
                method, service, path = requests[(n + worker) % len(requests)]
                at = time.monotonic() - self.started
                body: dict[str, object] | None = {"title": f"load {worker}-{n}"} if method == "POST" else None
                try:
                    status, text = send(method, service, path, body=body, timeout=10)
                    version, error = judge(method, service, path, status, text)
                except Exception as failure:  # refused, reset, timed out, cut short, not HTTP: a failed request
                    status, version, error = 0, "", f"{type(failure).__name__}: {failure}"
                took = time.monotonic() - self.started - at
                outcome = Outcome(at, f"{method} {service} {path}{how}", status, version, error, took)
                with self._lock:
                    self._outcomes.append(outcome)
                n += 1
                pause = self.started + (n + worker / self.workers) * interval - time.monotonic()
                if pause > 0:
                    self._stop.wait(pause)
        finally:
            if client is not None:
                client.close()


def api_version(deployed: Deployed) -> str:
    status, body = deployed.http("GET", "api", "/", timeout=10)
    assert status == 200, body
    return str(json.loads(body)["version"])
