"""The ingress's configuration, rendered from the service specs: never edited by hand.

HAProxy balances each routed service over whatever answers to its network alias, through Docker's
DNS (127.0.0.11), re-resolved every second. A container is admitted only once its health endpoint
answers (200, or 503 when a dependency is down: the process serves), twice in a row; a refused or
reset connection is retried on another server. So during a create-first replacement no request
reaches a container that is starting, stopping or not listening. (Measured on this machine:
../shared/docs/world.md, "Switching traffic".)
"""

from __future__ import annotations

from dataclasses import dataclass

CONFIG_PATH = "/tmp/haproxy.cfg"  # written at start from $HAPROXY_CONFIG (tmpfs under a read-only root)
CERT_PATH = "/tmp/site.pem"  # the server certificate and key, written at start from $HAPROXY_TLS_PEM
HTTP_PORT = 8080  # inside the container: a non-root process cannot bind 80 or 443
HTTPS_PORT = 8443
HSTS = "max-age=31536000; includeSubDomains"
STATUS_PORT = 8404  # /healthz for the container's own health check
MAX_SERVERS = 6  # per service: old and new containers during a rollout, with room to spare
BODY_LIMIT_BYTES = 1024 * 1024
# One JSON object per request on stdout (Docker's json-file log), with the server that answered.
LOG_FORMAT = (
    '{"time":"%t","client":"%ci","host":"%[capture.req.hdr(0),json(utf8s)]","request":"%{+Q}r",'
    '"status":%ST,"bytes":%B,"backend":"%b","server":"%s","retries":%rc,"ms":%Tt}'
)


@dataclass(frozen=True)
class Route:
    host: str  # the Host header it answers
    service: str  # the network alias of its containers
    port: int
    health_path: str


def haproxy_config(routes: list[Route], https_port: int) -> str:
    """haproxy.cfg for `routes`; requests for any other host go to the first route's service.

    Plain HTTP only redirects to HTTPS (on the host's HTTPS port `https_port`).
    """
    https_host = "%[req.hdr(host),field(1,:)]" + ("" if https_port == 443 else f":{https_port}")
    frontend_rules = "\n".join(
        f"    use_backend {r.service} if {{ hdr(host),field(1,:) -m str -i {r.host} }}" for r in routes
    )
    backends = "\n\n".join(
        f"""backend {r.service}
    option httpchk GET {r.health_path}
    http-check expect rstatus ^(200|503)$
    server-template {r.service} {MAX_SERVERS} {r.service}:{r.port} check resolvers docker init-addr none"""
        for r in routes
    )
    return f"""# Rendered by the Pulumi program (infra/ingress.py); do not edit.
global
    log stdout format raw local0

resolvers docker
    nameserver dns 127.0.0.11:53
    hold valid 1s
    hold obsolete 1s
    accepted_payload_size 8192

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
    # One request per server connection: no race between a server closing an idle connection and
    # the next request on it. Refused or empty connections are retried, on another server.
    http-reuse never
    option http-server-close
    retries 3
    option redispatch 1
    retry-on conn-failure empty-response response-timeout
    # A server is admitted after two good checks in a row and dropped after three bad ones: requests
    # meanwhile sent to one that stopped are refused, and retried on another. A check may take as
    # long as the app's own call to the api (its /health asks the api).
    timeout check 6s
    # A server that refuses or drops a connection is taken out at once, not after its next checks.
    default-server inter 1s fastinter 500ms rise 2 fall 3 observe layer4 error-limit 1 on-error mark-down

frontend http
    bind :{HTTP_PORT}
    http-request redirect location https://{https_host}%[capture.req.uri] code 301

frontend https
    bind :{HTTPS_PORT} ssl crt {CERT_PATH} alpn http/1.1 ssl-min-ver TLSv1.2
    capture request header Host len 64
    http-request deny deny_status 413 if {{ req.hdr_val(content-length) gt {BODY_LIMIT_BYTES} }}
    http-response set-header Strict-Transport-Security "{HSTS}"
    http-response set-header X-Content-Type-Options nosniff
    http-response set-header X-Frame-Options DENY
    http-response set-header Referrer-Policy strict-origin-when-cross-origin
{frontend_rules}
    default_backend {routes[0].service}

frontend status
    bind :{STATUS_PORT}
    monitor-uri /healthz

{backends}
"""
