# Stand-in for the official redis image: docker-entrypoint.sh that drops root for redis-server,
# /data as working directory and volume, the official uid 999.
ARG BASE
FROM ${BASE}
RUN groupadd -r -g 999 redis && useradd -r -u 999 -g redis -d /data redis \
 && apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends redis-server gosu \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /data && chown redis:redis /data
COPY redis-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
VOLUME /data
WORKDIR /data
EXPOSE 6379
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["redis-server"]
