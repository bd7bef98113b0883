"""The request loop that judges every zero-downtime claim, against a small local server that
misbehaves on purpose: each kind of bad answer is counted as a failed request with its kind, a
worker that dies fails the report, and so does a rate under the floor."""

from __future__ import annotations

import http.server
import json
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from http.client import HTTPConnection

import pytest

from proof.harness.clients import KeepAlive
from proof.harness.clients import http as request
from proof.harness.load import HttpTarget, LoadLoop, LoadReport, Outcome, judge, under_load

PAGE = "<!doctype html><html><body>tasks</body></html>"


class Misbehaving(http.server.BaseHTTPRequestHandler):
    """Answers the loop's three requests well (keeping the connection open), or in the way `mode`
    says: failing, or closing kept-alive connections with notice (`Connection: close`, as HAProxy's
    `idle-close-on-response` does in a soft stop) or without (as a plain soft stop does)."""

    mode = "good"
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self._answer(200, PAGE if self.path == "/" and self.headers["Host"] == "app" else '{"version": "v1"}')

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self._answer(201, '{"id": 1, "title": "t"}')

    def _answer(self, status: int, body: str) -> None:
        mode = self.server.mode  # type: ignore[attr-defined]
        if mode == "reset":  # close with RST, no answer
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            return
        if mode == "garbage":
            self.wfile.write(b"NOT HTTP AT ALL\r\n\r\n")
            self.close_connection = True
            return
        data = (body if mode != "not-json" else "oops: not what was asked for").encode()
        self.send_response(status if mode != "error" else 502)
        self.send_header("Content-Length", str(len(data)))
        if mode not in ("good", "close-idle"):  # closes after this answer, and says so
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data[: len(data) // 2] if mode == "truncate" else data)
        self.close_connection = mode != "good"

    def log_message(self, *_: object) -> None:  # quiet
        pass


class LocalTarget:
    """The loop's target, as a deployed stack: the service is sent as the Host header."""

    def __init__(self, port: int) -> None:
        self.port = port

    def http(
        self, method: str, service: str, path: str = "", body: dict[str, object] | None = None, timeout: float = 5
    ) -> tuple[int, str]:
        return request(method, f"http://127.0.0.1:{self.port}{path}", body=body, host=service, timeout=timeout)

    def keepalive(self) -> KeepAlive:
        return KeepAlive(lambda _, timeout: HTTPConnection("127.0.0.1", self.port, timeout=timeout), lambda s: s)


@pytest.fixture
def server() -> Iterator[http.server.ThreadingHTTPServer]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Misbehaving)
    httpd.mode = "good"  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def run_loop(target: HttpTarget, stall_seconds: float = 30) -> LoadReport:
    with LoadLoop(target, rate=60, workers=4, max_seconds=10, stall_seconds=stall_seconds) as loop:
        time.sleep(1.0)
        return loop.report()


def test_good_answers_are_all_counted_as_served(server: http.server.ThreadingHTTPServer) -> None:
    load = run_loop(LocalTarget(server.server_address[1]))
    assert len(load.outcomes) >= 30 and load.failed == [], load.failures_by_kind()
    assert load.versions() == ["v1"]
    plain = {"GET api /", "GET app /", "POST api /tasks"}
    assert {o.what for o in load.outcomes} == plain | {f"{what} (keep-alive)" for what in plain}


def test_a_change_under_load_is_covered_on_both_sides_and_answers_what_it_returned(
    server: http.server.ThreadingHTTPServer,
) -> None:
    def change() -> str:
        time.sleep(0.5)
        return "changed"

    target = LocalTarget(server.server_address[1])
    done = under_load(LoadLoop(target, rate=60, workers=4, max_seconds=20), change, settle=1)
    assert done.result == "changed" and 0.5 <= done.took < 2.0
    assert done.began >= 2.0, "the loop ran before the change"
    assert done.uncovered() == [] and done.load.failed == []
    assert max(o.at for o in done.load.outcomes) > done.ended, "and after it"


def test_kept_alive_connections_closed_without_notice_fail_those_clients(
    server: http.server.ThreadingHTTPServer,
) -> None:
    server.mode = "close-idle"  # type: ignore[attr-defined]
    load = run_loop(LocalTarget(server.server_address[1]))
    assert load.failed, "a request on a connection the server closed fails"
    assert all(o.what.endswith("(keep-alive)") for o in load.failed), load.failures_by_kind()
    assert set(load.failures_by_kind()) <= {"RemoteDisconnected", "ConnectionResetError", "BrokenPipeError"}


def test_kept_alive_connections_closed_with_notice_fail_nothing(server: http.server.ThreadingHTTPServer) -> None:
    server.mode = "close-with-notice"  # type: ignore[attr-defined]
    load = run_loop(LocalTarget(server.server_address[1]))
    assert load.failed == [] and any(o.what.endswith("(keep-alive)") for o in load.outcomes)


@pytest.mark.parametrize(
    ("mode", "kinds"),
    [
        ("truncate", {"IncompleteRead"}),
        ("reset", {"ConnectionResetError", "RemoteDisconnected"}),
        ("garbage", {"BadStatusLine", "RemoteDisconnected"}),
        ("not-json", {"NotJSON", "BodyCutShort"}),
        ("error", {"HTTP 502"}),
    ],
)
def test_every_bad_answer_is_a_failed_request_with_its_kind(
    server: http.server.ThreadingHTTPServer, mode: str, kinds: set[str]
) -> None:
    server.mode = mode  # type: ignore[attr-defined]
    load = run_loop(LocalTarget(server.server_address[1]))
    assert len(load.outcomes) >= 30, "the workers kept going"
    assert len(load.failed) == len(load.outcomes), f"{len(load.failed)} of {len(load.outcomes)} counted as failed"
    assert set(load.failures_by_kind()) <= kinds and load.failures_by_kind(), load.failures_by_kind()
    assert load.longest_without_service() == pytest.approx(load.seconds)


def test_an_answer_counts_only_whole_and_as_asked() -> None:
    assert judge("GET", "app", 200, PAGE) == ("", "")
    assert judge("GET", "app", 200, PAGE[:30])[1].startswith("BodyCutShort")  # no length to check
    assert judge("GET", "api", 200, json.dumps({"version": "v2"})) == ("v2", "")
    assert judge("GET", "api", 200, "[]")[1] == "NoVersion"
    assert judge("POST", "api", 201, '{"title": "no id"}')[1].startswith("NoTaskId")
    assert judge("POST", "api", 200, '{"id": 1}')[1].startswith("HTTP 200")


class FirstCallGoesWrong:
    """A target whose first call does `wrong` first: ends the calling thread (not as a failed request),
    or blocks, as a request that hangs past every time-out would."""

    def __init__(self, inner: LocalTarget, wrong: Callable[[], None]) -> None:
        self.inner, self.wrong, self.calls = inner, wrong, 0

    def keepalive(self) -> KeepAlive:
        return self.inner.keepalive()

    def http(
        self, method: str, service: str, path: str = "", body: dict[str, object] | None = None, timeout: float = 5
    ) -> tuple[int, str]:
        self.calls += 1
        if self.calls == 1:
            self.wrong()
        return self.inner.http(method, service, path, body, timeout)


def end_the_thread() -> None:
    raise SystemExit("the worker thread ends")


def test_a_worker_that_dies_fails_the_report(server: http.server.ThreadingHTTPServer) -> None:
    with pytest.raises(AssertionError, match=r"load workers died: \['worker \d: SystemExit"):
        run_loop(FirstCallGoesWrong(LocalTarget(server.server_address[1]), end_the_thread))


def test_a_worker_that_goes_quiet_fails_the_report(server: http.server.ThreadingHTTPServer) -> None:
    with LoadLoop(
        FirstCallGoesWrong(LocalTarget(server.server_address[1]), lambda: time.sleep(3.0)),
        rate=60,
        workers=4,
        stall_seconds=1.5,
    ) as loop:
        time.sleep(2.0)
        with pytest.raises(AssertionError, match=r"load worker \d sent nothing for \d+\.\d s .*stopped or hung"):
            loop.report()


def test_a_switch_is_proven_by_coverage_not_by_rate() -> None:
    def answer(at: float, version: str) -> Outcome:
        return Outcome(at, "GET api /", 200, version, "", 0.05)

    steady = LoadReport([answer(t / 4, "v1" if t < 40 else "v2") for t in range(80)], 20.0)
    assert steady.switch_uncovered("v1", "v2") == [] and steady.uncovered(5.0, 12.0) == []
    # Nothing sent in the two seconds before the new release first answered: not proven.
    gap = LoadReport([o for o in steady.outcomes if not 8.0 <= o.at < 10.0], 20.0)
    assert gap.switch_uncovered("v1", "v2") == ["no request sent in the 2 s before 10.0 s into the loop"]
    assert steady.switch_uncovered("v1", "v3") == ["no answer from v3"]
    assert LoadReport(steady.outcomes[:20], 5.0).uncovered(4.9, 6.0) == [
        "no request sent in the 2 s after 6.0 s into the loop"
    ]


def test_an_acknowledged_write_missing_from_the_database_is_named() -> None:
    def write(title: str, status: int, error: str = "") -> Outcome:
        return Outcome(at=0.0, what="POST api /tasks", status=status, error=error, sent=json.dumps({"title": title}))

    report = LoadReport([write("a", 201), write("b", 201), write("c", 503, "HTTP 503")], 1.0)
    assert report.unkept_writes({"a", "b"}, "title") == (2, [])
    assert report.unkept_writes({"a", "c"}, "title") == (2, ["b"]), "c was not acknowledged: it may be missing"
