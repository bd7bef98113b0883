# Stand-in for python:3.12-slim: python and pip on PATH, global pip installs allowed, HTTPS trusted.
ARG BASE
FROM ${BASE}
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      python3 python3-pip python3-venv ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && ln -s /usr/bin/python3 /usr/local/bin/python \
 && ln -s /usr/bin/pip3 /usr/local/bin/pip \
 # The official image's Python is not Debian's: nothing marks it externally managed.
 && rm -f /usr/lib/python3*/EXTERNALLY-MANAGED
COPY host-ca-certificates.crt /usr/local/share/ca-certificates/host-ca.crt
RUN update-ca-certificates >/dev/null
# uv and requests (Poetry) bundle their own roots: point them, and pip, at the system store that now holds the machine's CA.
ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
    REQUESTS_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt \
    LANG=C.UTF-8
CMD ["python3"]
