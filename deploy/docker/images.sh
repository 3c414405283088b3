#!/usr/bin/env bash
# Builds the zest images (zest/tracker, zest/edge, zest/origin, zest/client) on a machine without
# a container registry: the base images from deploy/docker/base.sh and binaries built on the host.
#
#   deploy/docker/images.sh                 # release binaries (cargo build --release)
#   ZEST_BIN_DIR=target/debug deploy/docker/images.sh   # binaries already built elsewhere
#
# With a registry, build from source instead:
#   docker build -f deploy/docker/Dockerfile --target tracker -t zest/tracker .
set -euo pipefail
cd "$(dirname "$0")/../.."
log() { printf '\033[1m== %s\033[0m\n' "$*"; }

deploy/docker/base.sh
bin_dir=${ZEST_BIN_DIR:-}
if [ -z "$bin_dir" ]; then
    cargo build --release --locked -p zest -p zest-tracker -p zest-edge -p zest-origin
    bin_dir=${CARGO_TARGET_DIR:-target}/release
fi
# Copied (without debug info) into the build context; the context ignores target/.
rm -rf deploy/docker/bin && mkdir -p deploy/docker/bin
for b in zest zest-tracker zest-edge zest-origin; do
    objcopy --strip-debug "$bin_dir/$b" "deploy/docker/bin/$b"
done
for target in tracker edge origin client; do
    log "building zest/$target"
    docker build -q -f deploy/docker/Dockerfile --target "$target" -t "zest/$target" \
        --build-arg BUILDER_IMAGE=zest-base:bookworm --build-arg RUNTIME_IMAGE=zest-base:bookworm \
        --build-arg ZEST_PREBUILT=deploy/docker/bin . >/dev/null
done
log "images ready: $(docker images --format '{{.Repository}}:{{.Tag}} {{.Size}}' 'zest/*' | tr '\n' ' ')"
