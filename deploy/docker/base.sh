#!/usr/bin/env bash
# Builds the base images for a machine without a container registry: a Debian root file system
# made with debootstrap from the mirror this machine's apt already uses, `docker import`ed as
# `zest-base:bookworm`, then the images the compose stack needs besides zest's own (PostgreSQL,
# Redis, Prometheus), installed from Debian's packages on that base.
#
#   deploy/docker/base.sh            # builds what is missing
#   deploy/docker/base.sh --force    # rebuilds everything
#
# With a registry you need none of this: the Dockerfile and docker-compose.yml default to the
# public images (rust, debian:bookworm-slim, postgres, redis, prom/prometheus, grafana/grafana).
set -euo pipefail
cd "$(dirname "$0")"

force=0
[ "${1:-}" = --force ] && force=1
suite=${ZEST_BASE_SUITE:-bookworm}
mirror=${ZEST_BASE_MIRROR:-$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)}
mirror=${mirror:-http://deb.debian.org/debian}

log() { printf '\033[1m== %s\033[0m\n' "$*"; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
have_image() { [ $force = 0 ] && docker image inspect "$1" >/dev/null 2>&1; }

if ! have_image "zest-base:$suite"; then
    if ! command -v debootstrap >/dev/null 2>&1; then
        log "installing debootstrap"
        as_root apt-get update -qq
        DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq debootstrap >/dev/null
    fi
    root=$(mktemp -d /tmp/zest-base.XXXXXX)
    trap 'as_root rm -rf "$root"' EXIT
    log "debootstrap $suite from $mirror (a few minutes)"
    # curl and ca-certificates: the images' health checks and TLS to real upstreams.
    as_root debootstrap --variant=minbase --include=ca-certificates,curl "$suite" "$root" "$mirror" \
        >"$root.log" 2>&1 || { tail -20 "$root.log" >&2; exit 1; }
    as_root rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
    log "docker import zest-base:$suite"
    as_root tar -C "$root" -c . | docker import - "zest-base:$suite" >/dev/null
    rm -f "$root.log"
fi

for target in postgres redis prometheus; do
    if ! have_image "zest-local/$target"; then
        log "building zest-local/$target from Debian's packages"
        docker build -q --build-arg "BASE=zest-base:$suite" \
            --target "$target" -t "zest-local/$target" -f local-deps.Dockerfile . >/dev/null
    fi
done
log "base images ready: zest-base:$suite zest-local/{postgres,redis,prometheus}"
