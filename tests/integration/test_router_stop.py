"""The router the program renders, stopped while it serves: the real HAProxy image, its real
configuration and hold.lua, a stand-in container behind it, the image's own stop signal.

A router is told to stop (SIGUSR1, a soft stop) whenever an `up` replaces it: a routing, TLS or
maintenance change. A request it has already taken must still be answered, also one it sends again
through its hold after a container answered 503 ("a dependency is away"); and a connection the
ingress hands it as it stops must not hang. The whole stack's router changes under load are in
test_deploy_prod.py, one each; here the rare moments they can hit are made certain, or many.
"""

from __future__ import annotations

import io
import shlex
import subprocess
import tarfile
import threading
import time

from infra.edge import status_probe
from infra.ingress import (
    CERT_PATH,
    HOLD_LUA,
    HOLD_LUA_FILE,
    HTTP_PORT,
    HTTPS_PORT,
    ROUTER,
    Route,
    router_config,
    tcp_ingress_config,
)
from proof.harness.certificates import ca_and_server
from proof.harness.cli import DOCKER, TEST_LABEL, docker, until, wait_healthy
from proof.harness.clients import https_to, keepalive_https
from proof.harness.figures import report
from proof.harness.standins import Standins

HOST = "api.router-stop.test"
CONFIG = "/usr/local/etc/haproxy/haproxy.cfg"  # where the image reads its configuration

# The container behind the router: healthy, and its first /slow is answered 503 after 2 s (the
# application's "my database is away"), every later one 200. A production server's backlog.
BACKEND = """
import http.server, sys, time
http.server.ThreadingHTTPServer.request_queue_size = 1024
answered = []
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        status = 200
        if self.path == "/slow":
            print("slow request", flush=True)
            time.sleep(2)
            status = 503 if not answered else 200
            answered.append(status)
        body = f"{self.path} {status}".encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("0.0.0.0", 8000), Handler).serve_forever()
"""

# The client: once the router serves, one GET /slow; prints its status and body.
CLIENT = f"""
import time, urllib.error, urllib.request
def get(path):
    request = urllib.request.Request(f"http://router:{HTTP_PORT}" + path, headers={{"Host": "{HOST}"}})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
for _ in range(60):
    try:
        if get("/")[0] == 200:
            break
    except OSError:
        pass
    time.sleep(0.5)
status, body = get("/slow")
print(status, body.strip().replace(chr(10), " "))
"""


def _files(files: dict[str, str]) -> bytes:
    """A tar of `files` (path: text) at their paths in a container, as `docker cp -` takes it."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for path, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(path.lstrip("/"))
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _haproxy(standins: Standins, network: str, name: str, alias: str, files: dict[str, str], *run: str) -> None:
    """Start the HAProxy image as `name` (network alias `alias`) with `files` (its configuration's
    path: text, and any other), health checked as the program checks it (its status port), and wait
    until it is healthy. `run`: more options of `docker create`."""
    probe = shlex.join(status_probe().test[1:])  # the program's own check of a router
    docker("create", "--name", name, "--label", TEST_LABEL, "--network", network, "--network-alias", alias,
           "--health-cmd", probe, "--health-interval", "1s", "-e", f"HAPROXY_TLS_PEM_FILE={CERT_PATH}", *run,
           standins.haproxy)  # fmt: skip
    subprocess.run([DOCKER, "cp", "-", f"{name}:/"], input=_files(files), check=True, capture_output=True)
    docker("start", name)
    wait_healthy(name, 60)


def _stopped(name: str, within: float) -> None:
    until(lambda: docker("inspect", "-f", "{{.State.Running}}", name).stdout.strip() == "false" or None, within,
          f"{name} to exit after its soft stop")  # fmt: skip


def test_a_request_sent_again_through_the_hold_while_the_router_stops_is_answered(
    standins: Standins, scratch_network: str
) -> None:
    config = router_config(
        [Route(host=HOST, service="api", port=8000, health_path="/health")],
        https_port=443,
        body_limit_bytes=1024 * 1024,
        proxy_protocol=False,
        front_proxies=["0.0.0.0/0"],  # plain HTTP served, so the client needs no certificate
        hold_seconds=30,
    )
    _, pem = ca_and_server([HOST], name="router-stop")
    network = scratch_network
    backend = f"{network}-api"
    router = f"{network}-router"
    docker("run", "-d", "--name", backend, "--label", TEST_LABEL, "--network", network, "--network-alias", "api",
           standins.python, "python", "-c", BACKEND)  # fmt: skip
    _haproxy(standins, network, router, ROUTER, {CONFIG: config, HOLD_LUA_FILE: HOLD_LUA, CERT_PATH: pem})
    client = subprocess.Popen(
        [DOCKER, "run", "--rm", "--label", TEST_LABEL, "--network", network, standins.python, "python", "-c", CLIENT],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        # The request is at the container (which answers 503 in 2 s): now the router is told to stop.
        until(lambda: "slow request" in docker("logs", backend).stdout or None, 60, "the request at the container")
        docker("kill", "--signal", "USR1", router)
        output, _ = client.communicate(timeout=60)
    finally:
        client.kill()
    logs = docker("logs", router, check=False)
    assert output.strip().splitlines()[-1:] == ["200 /slow 200"], f"{output}\nrouter:\n{logs.stdout}{logs.stderr}"
    # ... and the soft stop then ended by itself: nothing was left for it to finish.
    _stopped(router, 30)


def test_routers_replaced_again_and_again_behind_the_ingress_fail_no_request(
    standins: Standins, scratch_network: str
) -> None:
    """As an `up` replaces the router, 12 times: the new one healthy, then the old one told to stop,
    while clients that keep their connections and clients that do not send requests through the
    ingress. Before the stop's grace (ROUTER_STOP_GRACE_SECONDS), a stopping router refused a request
    already on its way to its hold (503 "No server is available"), or a connection handed to it as
    it closed its listeners hung until its hard stop (a client's 10 s timeout): one of each in a CI
    run's maintenance switch, and 1 of 9,771 requests failed here in 12 switches."""
    ca, pem = ca_and_server([HOST], name="router-switch")
    route = Route(host=HOST, service="api", port=8000, health_path="/health")
    config = router_config([route], 443, 1024 * 1024, proxy_protocol=True, front_proxies=[], hold_seconds=30)
    network = scratch_network
    docker("run", "-d", "--name", f"{network}-api", "--label", TEST_LABEL, "--network", network,
           "--network-alias", "api", standins.python, "python", "-c", BACKEND)  # fmt: skip
    router_files = {CONFIG: config, HOLD_LUA_FILE: HOLD_LUA, CERT_PATH: pem}
    _haproxy(standins, network, f"{network}-router-0", ROUTER, router_files)
    ingress = f"{network}-ingress"
    _haproxy(standins, network, ingress, "ingress", {CONFIG: tcp_ingress_config()}, "-p", f"127.0.0.1::{HTTPS_PORT}")
    port = int(docker("port", ingress, str(HTTPS_PORT)).stdout.split(":")[-1])
    until(lambda: https_to("127.0.0.1", port, "GET", "/", HOST, ca)[0] == 200 or None, 30, "served through the ingress")

    outcomes: list[str] = []  # one per request: "" when answered 200, else why not (list.append is atomic)
    stop = threading.Event()

    def client(keep: bool) -> None:
        kept = keepalive_https("127.0.0.1", port, ca, lambda _: HOST)
        while not stop.is_set():
            try:
                status, body = kept.http("GET", "api", "/", timeout=10) if keep else https_to(
                    "127.0.0.1", port, "GET", "/", HOST, ca, timeout=10)  # fmt: skip
                outcomes.append("" if status == 200 else f"HTTP {status}: {body[:80]}")
            except Exception as error:  # every failure counted, by its kind
                outcomes.append(f"{type(error).__name__}: {error}")
            time.sleep(0.02)
        kept.close()

    clients = [threading.Thread(target=client, args=(i % 2 == 0,), daemon=True) for i in range(6)]
    for thread in clients:
        thread.start()
    stops: list[float] = []
    try:
        for switch in range(1, 13):
            _haproxy(standins, network, f"{network}-router-{switch}", ROUTER, router_files)
            time.sleep(1.5)  # the ingress resolves the new one (every 1 s) and checks it
            old = f"{network}-router-{switch - 1}"
            began = time.monotonic()
            docker("kill", "--signal", "USR1", old)  # what `docker stop` sends first: the image's stop signal
            _stopped(old, 40)
            stops.append(time.monotonic() - began)
    finally:
        stop.set()
        for thread in clients:
            thread.join(15)
    failed = [outcome for outcome in outcomes if outcome]
    assert len(outcomes) > 12 * 20, f"the clients sent {len(outcomes)} requests"
    assert failed == [], f"{len(failed)} of {len(outcomes)} failed: {failed[:5]}"
    assert max(stops) < 15, f"an old router took {max(stops):.1f} s to stop (a connection hung until its hard stop)"
    report(f"router replaced 12 times behind the ingress: {len(outcomes)} requests, 0 failed; "
           f"each old router stopped in {min(stops):.1f} to {max(stops):.1f} s")  # fmt: skip
