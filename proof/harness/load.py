"""The request loop the rollout claims are measured under: every outcome counted, with its kind."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from proof.harness.clients import KeepAlive

# A loop proves a switch by what it covered, never by its rate (a busy machine sends fewer): a worker
# that sent nothing for STALL_SECONDS stopped or hung (a request gives up after 10 s), and a switch
# is covered when requests went out in the COVER_MARGIN seconds on either side of it.
STALL_SECONDS = 30.0
COVER_MARGIN = 2.0
T = TypeVar("T")


@dataclass
class Outcome:
    at: float  # seconds since the loop started
    what: str  # "GET api /", "GET app /", "POST api /tasks"
    status: int  # 0: no response (refused, reset, timed out, not HTTP)
    version: str = ""
    error: str = ""  # why it failed: the exception's type and words, or what was wrong with the answer
    seconds: float = 0.0  # how long it took to answer (or fail)
    worker: int = 0  # the loop's worker that sent it
    sent: str = ""  # a POST's body, as JSON: what an acknowledged write must have kept

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

    def unkept_writes(self, kept: set[str], field: str) -> tuple[int, list[str]]:
        """How many writes were acknowledged, and the `field` of those not among `kept` (what the
        database holds): a write the application said it made must be there."""
        acknowledged = {str(body[field]) for body in self.acknowledged_writes()}
        return len(acknowledged), sorted(acknowledged - kept)

    def slowest(self) -> float:
        """The longest any request took to be answered (while a service is away: the longest held)."""
        return max((o.seconds for o in self.outcomes), default=0.0)

    def acknowledged_writes(self) -> list[dict[str, object]]:
        """The bodies of the POSTs that were answered as written (201, whole)."""
        return [json.loads(o.sent) for o in self.outcomes if o.ok and o.sent]

    def failed_between(self) -> tuple[float, float] | None:
        """When the first failed request was sent and when the last failed one was answered."""
        failed = self.failed
        return (failed[0].at, max(o.at + o.seconds for o in failed)) if failed else None

    def first(self, version: str) -> float | None:
        return next((o.at for o in self.outcomes if o.version == version), None)

    def sent_before(self, moment: float, margin: float) -> int:
        return sum(1 for o in self.outcomes if moment - margin <= o.at < moment)

    def sent_after(self, moment: float, margin: float) -> int:
        return sum(1 for o in self.outcomes if moment < o.at <= moment + margin)

    def uncovered(self, start: float, end: float | None = None, margin: float = COVER_MARGIN) -> list[str]:
        """Why the loop does not cover the moments `start` to `end` (an `up`, a switch of traffic):
        no request sent in the `margin` seconds before `start`, or in those after `end`. (Inside,
        `report()` has already checked that no worker went quiet.)"""
        end = start if end is None else end
        problems = []
        if not self.sent_before(start, margin):
            problems.append(f"no request sent in the {margin:.0f} s before {start:.1f} s into the loop")
        if not self.sent_after(end, margin):
            problems.append(f"no request sent in the {margin:.0f} s after {end:.1f} s into the loop")
        return problems

    def switch_uncovered(self, old: str, new: str) -> list[str]:
        """Why the loop does not prove a switch from release `old` to `new`: both must have answered,
        and requests must have been in flight around the moment the first answer of `new` came."""
        problems = [f"no answer from {v}" for v in (old, new) if self.first(v) is None]
        moved = self.first(new)
        return problems + ([] if moved is None else self.uncovered(moved))


class HttpTarget(Protocol):
    """What the loop sends through: a deployed stack (its ingress or published ports)."""

    def http(
        self, method: str, service: str, path: str = "", body: dict[str, object] | None = None, timeout: float = 5
    ) -> tuple[int, str]: ...

    def keepalive(self) -> KeepAlive: ...


def judge(method: str, service: str, status: int, text: str) -> tuple[str, str]:
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


Request = tuple[str, str, str]  # method, service, path
# What the loop sends to the shipped application: an api GET, an app page, and a POST that writes.
SHIPPED_REQUESTS: tuple[Request, ...] = (("GET", "api", "/"), ("GET", "app", "/"), ("POST", "api", "/tasks"))


def shipped_body(worker: int, n: int) -> dict[str, object]:
    return {"title": f"load {worker}-{n}"}


class LoadLoop:
    """Requests through the ingress while an `up` runs: GETs of an api and an app page and a POST that
    writes, at `rate` a second from `workers` threads (one slow response does not stall the rest).
    `keepalive` of the workers keep their connections open between requests, as browsers and SDKs
    do (a server closing an idle connection under them is a failure they see); the others open one
    per request. Bounded: it stops when told, or after `max_seconds`, or after `max_requests`.

    Every outcome is recorded: any exception is a failed request with its type, and so is an answer
    that is cut short or not what was asked for. A worker that dies, hangs or goes quiet for
    `stall_seconds` fails `report()`; what a test then proves is by coverage (`LoadReport.uncovered`).
    """

    def __init__(
        self,
        deployed: HttpTarget,
        rate: float = 32,
        workers: int = 8,  # enough that slow answers during a rollout do not lower the rate
        keepalive: int = 2,
        max_seconds: float = 240,
        max_requests: int = 10000,
        requests: tuple[Request, ...] = SHIPPED_REQUESTS,  # another application's: its own paths
        body: Callable[[int, int], dict[str, object]] = shipped_body,  # a POST's body, by worker and count
        stall_seconds: float = STALL_SECONDS,
        request_timeout: float = 10,  # what a client waits for an answer (a held request waits longer)
    ):
        self.stall_seconds, self.request_timeout = stall_seconds, request_timeout
        self.requests, self.body = requests, body
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

    def report(self) -> LoadReport:
        """Stop the loop and return what it saw; fails if a worker died, hung, or sent nothing for
        `stall_seconds` (a loop that stopped proves nothing)."""
        stopped = time.monotonic() - self.started
        self.__exit__()
        hung = [i for i, thread in enumerate(self._threads) if thread.is_alive()]
        assert not hung, f"load workers {hung} did not stop within 30 s"
        assert not self._deaths, f"load workers died: {self._deaths}"
        with self._lock:
            outcomes = sorted(self._outcomes, key=lambda o: o.at)
        for worker in range(self.workers):
            sent = [0.0, *(o.at for o in outcomes if o.worker == worker), stopped]
            quiet, since = max((b - a, a) for a, b in zip(sent, sent[1:], strict=False))
            assert quiet <= self.stall_seconds, (
                f"load worker {worker} sent nothing for {quiet:.1f} s (from {since:.1f} s into the loop):"
                " it stopped or hung"
            )
        return LoadReport(outcomes, time.monotonic() - self.started)

    def _worker(self, worker: int) -> None:
        try:
            self._run(worker)
        except BaseException as death:  # noqa: BLE001 - recorded, and report() fails on it
            self._deaths.append(f"worker {worker}: {type(death).__name__}: {death}")

    def _run(self, worker: int) -> None:
        requests = self.requests
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
                body = self.body(worker, n) if method == "POST" else None
                try:
                    status, text = send(method, service, path, body=body, timeout=self.request_timeout)
                    version, error = judge(method, service, status, text)
                except Exception as failure:  # refused, reset, timed out, cut short, not HTTP: a failed request
                    status, version, error = 0, "", f"{type(failure).__name__}: {failure}"
                took = time.monotonic() - self.started - at
                what, sent = f"{method} {service} {path}{how}", json.dumps(body) if body else ""
                outcome = Outcome(at, what, status, version, error, took, worker, sent)
                with self._lock:
                    self._outcomes.append(outcome)
                n += 1
                pause = self.started + (n + worker / self.workers) * interval - time.monotonic()
                if pause > 0:
                    self._stop.wait(pause)
        finally:
            if client is not None:
                client.close()


@dataclass(frozen=True)
class UnderLoad(Generic[T]):
    """One change made while a LoadLoop ran: what it returned, what the loop saw, and when it ran
    (seconds into the loop)."""

    result: T
    load: LoadReport
    began: float
    ended: float

    @property
    def took(self) -> float:
        return self.ended - self.began

    def uncovered(self) -> list[str]:
        return self.load.uncovered(self.began, self.ended)


def under_load(loop: LoadLoop, change: Callable[[], T], settle: float = 3) -> UnderLoad[T]:
    """Run `change` (an `up`, a script) while `loop` sends requests: the loop runs 2 s before it
    and `settle` seconds after, so that both sides of it are covered."""
    with loop:
        time.sleep(2)
        began = time.monotonic() - loop.started
        result = change()
        ended = time.monotonic() - loop.started
        time.sleep(settle)
        return UnderLoad(result, loop.report(), began, ended)
