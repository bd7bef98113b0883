"""HTTP clients of a deployed stack: one request at a time, or kept alive as browsers and SDKs do;
HTTPS verified against the stack's CA, for the host name the ingress routes on."""

from __future__ import annotations

import json
import socket
import ssl
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from http.client import HTTPConnection, HTTPSConnection


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


def exchange(
    port: int,
    host: str,
    path: str,
    headers: dict[str, str],
    ca: str | None = None,
    timeout: float = 10,
    body: dict[str, object] | None = None,
) -> tuple[int, dict[str, str], str]:
    """One GET (a POST of `body` as JSON, where given) to 127.0.0.1:`port` for `host` with extra
    `headers`, over HTTPS verified against `ca` where given, plain HTTP otherwise: (status, response
    headers, body)."""
    connection: HTTPConnection
    if ca is not None:
        connection = _PinnedHTTPSConnection("127.0.0.1", host, port, ssl.create_default_context(cadata=ca), timeout)
    else:
        connection = HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        if body is None:
            connection.request("GET", path, headers={"Host": host, **headers})
        else:
            sent = {"Host": host, "Content-Type": "application/json", **headers}
            connection.request("POST", path, body=json.dumps(body).encode(), headers=sent)
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read().decode()
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
