# Stand-in for the official caddy image (Debian's Caddy 2.6): its data and config under /data and
# /config (XDG_DATA_HOME, XDG_CONFIG_HOME), run as root, as the official image does. Used to check
# that the ACME ingress's rendered Caddyfile is one Caddy accepts; nothing here can reach an ACME CA.
ARG BASE
FROM ${BASE}
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends caddy \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /data/caddy /config/caddy
ENV XDG_CONFIG_HOME=/config XDG_DATA_HOME=/data
CMD ["caddy", "run", "--config", "/etc/caddy/Caddyfile", "--adapter", "caddyfile"]
