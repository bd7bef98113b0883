"""The ingress's configurations, rendered from the service specs: never edited by hand.

Two layers, so that a change to routing, TLS or headers drops no connection:

- `ingress` publishes the host's HTTP and HTTPS ports and changes only with those ports and its
  image. By default it is HAProxy in TCP mode, passing every connection (with the client's
  address, in a PROXY header) to whichever `router` is healthy; with `acmeEmail` set it is Caddy,
  which gets certificates from ACME for the domain and passes requests to the router over TLS.
- `router` terminates TLS with the stack's internal certificate, routes by Host and balances each
  routed service. It is replaced create-first, like api and app: the new router is healthy before
  the old one is stopped, and the ingress retries a refused connection on another router.

The router balances each service over whatever answers to its network alias, through Docker's DNS
(127.0.0.11), re-resolved every second. A container is admitted only once its health endpoint
answers 200, twice in a row; a refused or reset connection is retried on another server. So during
a create-first replacement no request reaches a container that is starting, stopping or not
listening (measured: bench/RESULTS.md, "rollout").

While a service has no container to serve (its database away: a Postgres change, a restore), the
router holds its requests instead of failing them (hold.lua), up to `requestHoldSeconds`, then
answers 503 with Retry-After. A container that answers 503 (the application's "a dependency is
away, I changed nothing") is taken out until its health endpoint answers 200 again, and the request
is sent again after the wait. Each routed service is three sections: `<service>` takes the request
from the frontend and re-sends it on a 503, `<service>-hold` waits, `<service>-servers` balances
over the containers. Health requests skip the wait (`<service>-health`), so a monitor sees at once
what is away.
"""

from __future__ import annotations

import html
from dataclasses import dataclass

# Where secrets that reach a stack as values (dev, test) are written at start for the proxies,
# which read only files: the router's certificate and key, and the internal CA that the ACME
# ingress verifies the router with. Both configurations name the file by its <VAR>_FILE variable.
CERT_PATH = "/tmp/site.pem"
CADDY_CA_PATH = "/tmp/router-ca.pem"
HOLD_LUA_FILE = "/usr/local/share/haproxy/hold.lua"  # beside, not in, the configuration's directory (one volume each)
HOLD_RETRY_AFTER_SECONDS = 5  # past the hold: the dependency has been away a while already
PAST_THE_HOLD = '{"detail": "unavailable; retry shortly"}'  # the body of the router's own 503
HTTP_PORT = 8080  # inside the containers: a non-root process cannot bind 80 or 443
HTTPS_PORT = 8443
ROUTER_STOP_GRACE_SECONDS = 3  # a stopping router's listeners stay open this long (see router_config)
STATUS_PORT = 8404  # /healthz for the containers' own health checks and the ingress's checks of routers
HSTS = "max-age=31536000; includeSubDomains"
MAX_SERVERS = 6  # per service: old and new containers during a rollout, with room to spare
ROUTER = "router"  # the network alias of the routers
# One JSON object per request on stdout (Docker's json-file log), with the server that answered.
# "server" is the container that answered (passed back by the hold); "held_ms" how long the request
# waited for one; "retries" how often it was sent again.
LOG_FORMAT = (
    '{"time":"%t","client":"%ci","host":"%[capture.req.hdr(0),json(utf8s)]","request":"%{+Q}r",'
    '"status":%ST,"bytes":%B,"backend":"%b","server":"%[var(txn.server)]","held_ms":"%[var(txn.held_ms)]",'
    '"retries":%rc,"ms":%Tt}'
)


@dataclass(frozen=True)
class HostNames:
    """The names the ingress serves, the one place they are made: the app at the stack's domain,
    the api at api.<domain>."""

    app: str
    api: str

    @classmethod
    def of(cls, domain: str) -> HostNames:
        return cls(app=domain, api=f"api.{domain}")

    def of_service(self, service: str) -> str:
        return self.app if service == "app" else self.api

    def all(self) -> list[str]:
        return [self.app, self.api]


TCP_LOG_FORMAT = '{"time":"%t","client":"%ci","frontend":"%f","server":"%s","retries":%rc,"ms":%Tt,"bytes":%B}'

# Shared by both HAProxy layers: a server is admitted after two good checks in a row and taken out
# at once when it refuses or drops a connection; a refused connection is retried on another.
_DNS = """resolvers docker
    nameserver dns 127.0.0.11:53
    hold valid 1s
    hold obsolete 1s
    accepted_payload_size 8192"""
_SERVERS = (
    "default-server inter 1s fastinter 500ms downinter 500ms rise 2 fall 3"
    " observe layer4 error-limit 1 on-error mark-down"
)


@dataclass(frozen=True)
class Route:
    host: str  # the Host header it answers
    service: str  # the network alias of its containers
    port: int
    health_path: str


def _https_redirect(https_port: int) -> str:
    return "" if https_port == 443 else f":{https_port}"


FRONT_MARK = "# TLS ends in front of this stack (tlsTermination: front)"


MAINTENANCE_RETRY_AFTER_SECONDS = 300


def _maintenance(message: str | None) -> str:
    """In maintenance, every request is answered here (the health endpoints too): a 503 page and
    Retry-After, before any backend is asked."""
    if message is None:
        return ""
    page = f"<!doctype html><title>Maintenance</title><h1>Maintenance</h1><p>{html.escape(message)}</p></html>"
    retry = f"hdr Retry-After {MAINTENANCE_RETRY_AFTER_SECONDS} hdr Cache-Control no-store"
    return f"""    # Maintenance (scripts/ops <stack> maintenance on): no request reaches a backend.
    http-request return status 503 content-type "text/html; charset=utf-8" string "{page}" {retry}
"""


def _host(r: Route) -> str:
    return f"hdr(host),field(1,:) -m str -i {r.host}"


def _serving(routes: list[Route], body_limit_bytes: int, maintenance: str | None) -> str:
    """What a serving frontend does, over TLS or behind a proxy that ended it: the body limit, the
    security headers, routing by Host (any other host goes to the first route), or in maintenance
    one 503 page for everything."""
    # A router in its soft stop (replaced) has closed its listeners, the hold's too: the last requests
    # of its kept-alive clients go straight to the containers.
    use = "\n".join(
        f"    use_backend {r.service}-health if {{ {_host(r)} }} {{ path {r.health_path} }}\n"
        f"    use_backend {r.service}-servers if {{ {_host(r)} }} {{ stopping }}\n"
        f"    use_backend {r.service} if {{ {_host(r)} }}"
        for r in routes
    )
    return f"""    capture request header Host len 64
    # The body limit is decided on Content-Length alone, before any of the body is read (the
    # backends still buffer the body, so that a retry can send it again).
    no option http-buffer-request
    http-request deny deny_status 413 if {{ req.hdr_val(content-length) gt {body_limit_bytes} }}
{_maintenance(maintenance)}    http-response set-header Strict-Transport-Security "{HSTS}"
    http-response set-header X-Content-Type-Options nosniff
    http-response set-header X-Frame-Options DENY
    http-response set-header Referrer-Policy strict-origin-when-cross-origin
{use}
    default_backend {routes[0].service}"""


def _plain_http(accept: str, https_port: int, front_proxies: list[str]) -> str:
    """Port 80's frontend head: a redirect to HTTPS, or, where TLS ends in front of the stack, the
    headers that say what the client asked for, trusted only from the proxies in front."""
    if not front_proxies:
        https_host = "%[req.hdr(host),field(1,:)]" + _https_redirect(https_port)
        return f"""frontend http
    bind :{HTTP_PORT}{accept}
    http-request redirect location https://{https_host}%[capture.req.uri] code 301"""
    return f"""frontend http
    bind :{HTTP_PORT}{accept}
    {FRONT_MARK}: plain HTTP is served,
    # and the client's address, scheme and host are taken from X-Forwarded-* only from those proxies.
    acl from_front src {" ".join(front_proxies)}
    http-request del-header X-Forwarded-For unless from_front
    http-request del-header X-Forwarded-Proto unless from_front
    http-request del-header X-Forwarded-Host unless from_front
    http-request set-header X-Forwarded-Proto http unless from_front
    option forwardfor if-none"""


def router_config(
    routes: list[Route],
    https_port: int,
    body_limit_bytes: int,
    proxy_protocol: bool,
    front_proxies: list[str],
    hold_seconds: int,
    maintenance: str | None = None,
) -> str:
    """haproxy.cfg of the router for `routes`; requests for any other host go to the first route.

    Plain HTTP only redirects to HTTPS (on the host's HTTPS port `https_port`), unless TLS ends in
    front of the stack (`front_proxies`: the proxies' addresses), where it is served. With
    `proxy_protocol`, connections come from the TCP ingress with the client's address first.
    `hold_seconds`: how long a request waits while its service has no container to serve.
    `maintenance`: the message of the 503 page every request gets instead (None: serving).
    """
    accept = " accept-proxy" if proxy_protocol else ""
    plain = _plain_http(accept, https_port, front_proxies)
    http_serving = f"\n{_serving(routes, body_limit_bytes, maintenance)}" if front_proxies else ""
    backends = "\n\n".join(_held_service(r, hold_seconds) for r in routes)
    return f"""# Rendered by the Pulumi program (infra/ingress.py); do not edit.
global
    log stdout format raw local0
    # A soft stop (SIGUSR1, the image's stop signal) lets in-flight requests finish, for this long.
    hard-stop-after 20s
    # For this long after SIGUSR1 the listeners stay open, the hold's among them, while the status
    # fails and the ingress moves to another router: a request on its way to the hold (or sent there
    # again after a 503) is still taken, not refused ("No server is available"), and no connection
    # the ingress hands over as the listeners close hangs. New requests skip the hold ({{ stopping }}).
    grace {ROUTER_STOP_GRACE_SECONDS}s
    lua-load {HOLD_LUA_FILE}
    # A held request's Lua action runs as long as the hold.
    tune.lua.session-timeout {hold_seconds + 5}s

{_DNS}

defaults
    mode http
    log global
    log-format '{LOG_FORMAT}'
    option http-buffer-request
    # On the stack's own network a connect takes well under a millisecond; one to a container that
    # has just been removed gets no answer at all, so it fails fast and is retried elsewhere.
    timeout connect 300ms
    timeout client 30s
    timeout server 30s
    timeout http-request 10s
    # A client's other kept-alive connection idles while one request of its is held: it is kept that
    # long, and closed before the ingress's own 60 s would cut it.
    timeout http-keep-alive {hold_seconds + 20}s
    # One request per server connection: no race between a server closing an idle connection and
    # the next request on it. Refused or empty connections are retried, on another server.
    http-reuse never
    option http-server-close
    retries 3
    option redispatch 1
    retry-on conn-failure empty-response response-timeout
    # A check may take as long as the app's own call to the api (its /health asks the api).
    timeout check 6s
    {_SERVERS}

{plain}{http_serving}

frontend https
    bind :{HTTPS_PORT}{accept} ssl crt "${{HAPROXY_TLS_PEM_FILE}}" alpn http/1.1 ssl-min-ver TLSv1.2
    # In a soft stop (this router replaced), a client's idle kept-alive connection is not cut under
    # it: its next request is answered, with `Connection: close`, and it reconnects to the new router.
    option idle-close-on-response
{_serving(routes, body_limit_bytes, maintenance)}

frontend status
    bind :{STATUS_PORT}
    monitor-uri /healthz
    # Told to stop: the ingress sends new connections to another router.
    monitor fail if {{ stopping }}

{backends}
"""


def _held_service(r: Route, hold_seconds: int) -> str:
    """A routed service's sections: the request re-sent on a 503 (`<service>`), held while no
    container serves (`<service>-hold`), balanced over the healthy containers (`<service>-servers`),
    and its health endpoint asked of any container at once (`<service>-health`)."""
    servers = f"server-template {r.service} {MAX_SERVERS} {r.service}:{r.port}"
    unavailable = (
        f"status 503 content-type application/json string '{PAST_THE_HOLD}' hdr Retry-After {HOLD_RETRY_AFTER_SECONDS}"
    )
    return f"""backend {r.service}
    # A request its container answered 503 is sent again, through the hold: once for each container
    # that can be taken out, and once more when one is back.
    retries {MAX_SERVERS + 2}
    retry-on conn-failure empty-response 503
    timeout server {hold_seconds + 30}s
    http-request set-header X-Hold-Since %[date(0,ms)]
    http-response set-var(txn.held_ms) res.hdr(X-Held-Ms)
    http-response set-var(txn.server) res.hdr(X-Served-By)
    http-response del-header X-Held-Ms
    http-response del-header X-Served-By
    server hold abns@{r.service}-hold

frontend {r.service}-hold
    bind abns@{r.service}-hold
    http-request set-log-level silent  # logged once, by the frontend it came through
    http-request lua.hold {r.service}-servers {hold_seconds * 1000}
    http-request return {unavailable} if {{ nbsrv({r.service}-servers) eq 0 }}
    http-request del-header X-Hold-Since
    http-after-response set-header X-Held-Ms %[var(txn.held_ms)]
    http-after-response set-header X-Served-By %[srv_name]
    default_backend {r.service}-servers

backend {r.service}-servers
    option httpchk GET {r.health_path}
    http-check expect status 200
    # 503: a dependency is away and nothing was changed; out until the health endpoint says 200.
    http-response lua.out if {{ status 503 }}
    {servers} check resolvers docker init-addr none

backend {r.service}-health
    # No check: the health endpoint is asked even of a container that is out, to say why.
    {servers} resolvers docker init-addr none"""


# The router's Lua: the wait, and taking out a container that answered 503.
HOLD_LUA = """-- Rendered by the Pulumi program (infra/ingress.py); do not edit.
local function now_ms()
    local t = core.now()
    return t.sec * 1000 + t.usec // 1000
end

-- http-request lua.hold <servers backend> <bound ms>: wait while that backend has no server up,
-- from when the request arrived (X-Hold-Since, set by the router) for at most the bound.
core.register_action("hold", {"http-req"}, function(txn, servers, bound)
    local stamped = txn.http:req_get_headers()["x-hold-since"]
    local since = stamped and tonumber(stamped[0]) or now_ms()
    local deadline = since + tonumber(bound)
    while txn.f:nbsrv(servers) == 0 and now_ms() < deadline do
        core.msleep(50)
    end
    txn:set_var("txn.held_ms", math.max(0, now_ms() - since))
end, 2)

-- http-response lua.out: the server that answered is down until its checks pass again (rise).
core.register_action("out", {"http-res"}, function(txn)
    local server = core.backends[txn.f:be_name()].servers[txn.f:srv_name()]
    if server ~= nil then
        server:check_force_down()
    end
end, 0)
"""


def tcp_ingress_config() -> str:
    """haproxy.cfg of the TCP ingress: the same for every stack, so it is never replaced for a
    change of routing, TLS or headers. Each connection goes to a healthy router; a refused one is
    retried on another (a router stopping closes its listeners first)."""
    check = f"check port {STATUS_PORT} send-proxy-v2 resolvers docker init-addr none"
    backends = "\n\n".join(
        f"""backend router_{name}
    option httpchk GET /healthz
    server-template {ROUTER} {MAX_SERVERS} {ROUTER}:{port} {check}"""
        for name, port in (("http", HTTP_PORT), ("https", HTTPS_PORT))
    )
    return f"""# Rendered by the Pulumi program (infra/ingress.py); do not edit.
global
    log stdout format raw local0
    hard-stop-after 20s

{_DNS}

defaults
    mode tcp
    log global
    log-format '{TCP_LOG_FORMAT}'
    timeout connect 300ms
    timeout client 60s
    timeout server 60s
    retries 3
    option redispatch 1
    timeout check 2s
    {_SERVERS}

frontend http
    bind :{HTTP_PORT}
    default_backend router_http

frontend https
    bind :{HTTPS_PORT}
    default_backend router_https

frontend status
    mode http
    bind :{STATUS_PORT}
    monitor-uri /healthz

{backends}
"""


def caddy_config(hosts: HostNames, acme_email: str, acme_directory: str, https_port: int) -> str:
    """Caddyfile of the ACME ingress: certificates for <domain> and api.<domain> from ACME (kept in
    its data volume, renewed by Caddy), plain HTTP redirected, requests passed to the router over
    TLS checked against the stack's internal CA. HSTS, headers, the body limit and the JSON access
    log stay with the router."""
    return f"""# Rendered by the Pulumi program (infra/ingress.py); do not edit.
{{
	email {acme_email}
	acme_ca {acme_directory}
	# Unprivileged ports inside the container; Docker publishes them as 80 and 443. The ACME CA
	# reaches the HTTP-01 challenge on 80 and TLS-ALPN-01 on 443.
	http_port {HTTP_PORT}
	https_port {HTTPS_PORT}
	auto_https disable_redirects
	admin off
	storage file_system /data/caddy
	servers {{
		protocols h1 h2
	}}
}}

http://{hosts.app}, http://{hosts.api} {{
	redir https://{{host}}{_https_redirect(https_port)}{{uri}} 301
}}

{hosts.app}, {hosts.api} {{
	reverse_proxy https://{ROUTER}:{HTTPS_PORT} {{
		transport http {{
			tls_trusted_ca_certs {{$ROUTER_CA_FILE}}
			tls_server_name {hosts.app}
			# A new connection per request: no race with a router closing an idle one.
			keepalive off
		}}
	}}
}}

http://:{STATUS_PORT} {{
	respond /healthz 200
}}
"""
