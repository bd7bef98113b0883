"""The router the program renders, stopped while it serves: the real HAProxy image, its real
configuration and hold.lua, one stand-in container behind it, Docker's own stop signal.

A router is told to stop (SIGUSR1, a soft stop) whenever an `up` replaces it: a routing, TLS or
maintenance change. A request it has already taken must still be answered, also one it sends again
through its hold after a container answered 503 ("a dependency is away"). The whole stack's router
changes under load are in test_deploy_prod.py; this is the one moment they rarely hit, made certain.
"""

from __future__ import annotations

import io
import subprocess
import tarfile

from infra.ingress import CERT_PATH, HOLD_LUA, HOLD_LUA_FILE, HTTP_PORT, Route, router_config
from proof.harness.certificates import ca_and_server
from proof.harness.cli import DOCKER, TEST_LABEL, docker, until
from proof.harness.standins import Standins

HOST = "api.router-stop.test"

# The container behind the router: healthy, and its first /slow is answered 503 after 2 s (the
# application's "my database is away"), every later one 200.
BACKEND = """
import http.server, sys, time
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


def _files(config: str, pem: str) -> bytes:
    """A tar of the router's files at their paths in its container, as `docker cp -` takes it."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for path, text in (("usr/local/etc/haproxy/haproxy.cfg", config), (HOLD_LUA_FILE[1:], HOLD_LUA),
                           (CERT_PATH[1:], pem)):  # fmt: skip
            data = text.encode()
            info = tarfile.TarInfo(path)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


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
    docker("create", "--name", router, "--label", TEST_LABEL, "--network", network, "--network-alias", "router",
           "-e", f"HAPROXY_TLS_PEM_FILE={CERT_PATH}", standins.haproxy)  # fmt: skip
    subprocess.run([DOCKER, "cp", "-", f"{router}:/"], input=_files(config, pem), check=True, capture_output=True)
    docker("start", router)
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
    until(lambda: docker("inspect", "-f", "{{.State.Running}}", router).stdout.strip() == "false" or None, 30,
          "the router to exit after its soft stop")  # fmt: skip
