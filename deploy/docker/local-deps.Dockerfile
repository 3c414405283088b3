# Stand-ins for the public postgres, redis and prom/prometheus images, built from Debian's
# packages on the debootstrapped base (deploy/docker/base.sh) for machines without a registry.
# They take the same environment and paths as the public images where docker-compose.yml uses
# them (POSTGRES_USER / POSTGRES_PASSWORD / POSTGRES_DB, /var/lib/postgresql/data, /data,
# /etc/prometheus/prometheus.yml).
ARG BASE=zest-base:bookworm

# One package run for all three (the slow part on a fresh machine); each image then differs only
# in its user, entry point and data folder, and they share the layers.
FROM ${BASE} AS deps
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        postgresql redis-server prometheus >/dev/null && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /var/lib/postgresql/data /run/postgresql /data /prometheus \
    && chown -R postgres:postgres /var/lib/postgresql /run/postgresql \
    && chown redis:redis /data && chown prometheus:prometheus /prometheus

FROM deps AS postgres
COPY local-postgres-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
USER postgres
ENV PGDATA=/var/lib/postgresql/data
EXPOSE 5432
ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]

FROM deps AS redis
USER redis
WORKDIR /data
EXPOSE 6379
ENTRYPOINT ["redis-server", "--bind", "0.0.0.0", "--protected-mode", "no", "--dir", "/data"]

FROM deps AS prometheus
USER prometheus
EXPOSE 9090
ENTRYPOINT ["/usr/bin/prometheus"]
CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]
