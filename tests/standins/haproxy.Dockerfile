# Stand-in for the official haproxy image (Debian's HAProxy 2.6): the haproxy user as uid/gid 99,
# the configuration directory, SIGUSR1 as the stop signal (a soft stop: in-flight requests finish),
# bash for the stacks' health check.
ARG BASE
FROM ${BASE}
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends haproxy \
 && rm -rf /var/lib/apt/lists/* \
 && usermod -u 99 haproxy && groupmod -g 99 haproxy \
 && mkdir -p /usr/local/etc/haproxy \
 && cp /etc/haproxy/haproxy.cfg /usr/local/etc/haproxy/haproxy.cfg
STOPSIGNAL SIGUSR1
USER haproxy
CMD ["haproxy", "-W", "-db", "-f", "/usr/local/etc/haproxy/haproxy.cfg"]
