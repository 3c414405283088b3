#!/usr/bin/env bash
# Starts docker-compose.yml for real (origin profile, local images), pulls a generated model with
# the client image through edge-a and again through edge-b, checks every file byte for byte
# against the origin's folder, checks that Prometheus scrapes every service and evaluates every
# alert rule, then stops and removes everything (containers, volumes, network), also on failure.
#
#   deploy/compose-test.sh                         # release binaries
#   ZEST_BIN_DIR=target/debug deploy/compose-test.sh   # what scripts/test uses
#
# Bounded: every compose call runs under `timeout`; the whole run takes a few minutes once the
# base images exist (deploy/docker/base.sh builds them once per machine, ~8 minutes).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
log() { printf '\033[1m== compose-test: %s\033[0m\n' "$*"; }
fail() { printf 'compose-test: FAILED: %s\n' "$*" >&2; exit 1; }

command -v docker >/dev/null || fail "docker is not installed"
command -v docker-compose >/dev/null || fail "docker-compose is not installed"
docker info >/dev/null 2>&1 || fail "the Docker engine is not running"

deploy/docker/images.sh

project=zest-compose-test-$$
work=$(mktemp -d /tmp/zest-compose-test.XXXXXX)
compose() { timeout "${T:-120}" docker-compose -p "$project" --env-file "$work/env" --profile origin "$@"; }
cleanup() {
    rc=$?
    if [ $rc != 0 ]; then
        cat "$work/compose.log" >&2 2>/dev/null || true
        compose logs --no-color --tail 40 >&2 2>/dev/null || true
    fi
    T=120 compose --profile client down -v --remove-orphans >/dev/null 2>&1 || true
    rm -rf "$work"
    exit $rc
}
trap cleanup EXIT INT TERM

# A model: a plain config, and a Xet file with repeated content (dedup) and random bytes.
model=$work/models/acme/demo
mkdir -p "$model"
printf '{"model_type": "demo", "hidden_size": 64}\n' >"$model/config.json"
head -c 24M /dev/urandom >"$work/part"
cat "$work/part" "$work/part" <(head -c 9M /dev/urandom) >"$model/model.bin"
rm "$work/part"
chmod -R a+rX "$work/models"
(cd "$model" && sha256sum config.json model.bin) >"$work/want"

cat >"$work/env" <<ENV
ZEST_POSTGRES_PASSWORD=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
ZEST_TRACKER_TOKEN=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
ZEST_ORIGIN_MODELS=$work/models
ZEST_POSTGRES_IMAGE=zest-local/postgres
ZEST_REDIS_IMAGE=zest-local/redis
ZEST_PROMETHEUS_IMAGE=zest-local/prometheus
ZEST_PORT_TRACKER=0
ZEST_PORT_EDGE_HTTP=0
ZEST_PORT_EDGE_DATA=0
ZEST_PORT_EDGE_PEER=0
ZEST_PORT_ORIGIN=0
ZEST_PORT_PROMETHEUS=0
ENV

log "config"
compose config -q
# The systemd units, with ExecStart pointed at the binaries that exist here.
if command -v systemd-analyze >/dev/null; then
    mkdir -p "$work/units"
    for unit in deploy/systemd/*.service; do
        name=$(basename "$unit"); name=${name/@./@root.}
        sed "s|/usr/local/bin/|$root/deploy/docker/bin/|" "$unit" >"$work/units/$name"
    done
    systemd-analyze verify "$work"/units/*.service || fail "systemd-analyze rejects deploy/systemd"
    echo "  systemd units verify"
else
    echo "  systemd-analyze is not installed here: deploy/systemd NOT verified"
fi
# promtool from the Prometheus image: the config and the alert rules.
docker run --rm --entrypoint promtool -v "$root/deploy/prometheus:/etc/prometheus:ro" \
    zest-local/prometheus check config /etc/prometheus/prometheus.yml >/dev/null \
    || fail "promtool rejects deploy/prometheus"
# The Kubernetes manifests against the API schemas, strictly (no unknown field), offline.
kv=$(dirname "${ZEST_PYTHON:-$root/.venv/bin/python}")/kubernetes-validate
[ -x "$kv" ] || fail "kubernetes-validate is not installed ($kv; scripts/test installs it)"
"$kv" --strict --quiet $(ls deploy/k8s/*.yaml | grep -v kustomization.yaml) \
    || fail "kubernetes-validate rejects deploy/k8s"
python3 - deploy/k8s/kustomization.yaml <<'PY' || fail "deploy/k8s/kustomization.yaml names a missing file"
import os, sys
lines = open(sys.argv[1]).read().split("resources:")[1].splitlines()
names = [l.strip()[2:] for l in lines if l.strip().startswith("- ")]
missing = [n for n in names if not os.path.exists(os.path.join(os.path.dirname(sys.argv[1]), n))]
sys.exit(1 if missing or not names else 0)
PY
echo "  deploy/k8s validates (strict)"
# Every ZEST_* variable the deployment files give a service is one a binary reads.
python3 - "$root" <<'PY' || fail "deploy/ sets variables no zest binary reads"
import pathlib, re, sys
root = pathlib.Path(sys.argv[1])
given = set()
for f in [*root.glob("deploy/k8s/*.yaml")]:
    given |= set(re.findall(r"name: (ZEST_[A-Z0-9_]+)", f.read_text()))
for f in root.glob("deploy/systemd/*.service"):
    given |= set(re.findall(r"^Environment=(ZEST_[A-Z0-9_]+)=", f.read_text(), re.M))
given |= set(re.findall(r"\b(ZEST_[A-Z0-9_]+)=", "".join(
    l for l in (root / "deploy/docker/Dockerfile").read_text().splitlines(True) if "ENV" in l or l.startswith("    "))))
given |= set(re.findall(r"^\s+(ZEST_[A-Z0-9_]+):", (root / "docker-compose.yml").read_text(), re.M))
given -= {"ZEST_PREBUILT"}  # a build argument, not a service's
src = "".join(p.read_text() for d in ("tracker", "edge-cache", "client", "origin", "libs")
              for p in (root / d).rglob("*.rs") if "/tests/" not in str(p))
unread = sorted(v for v in given if f'"{v}"' not in src)
print("  unread by any binary:", ", ".join(unread) if unread else "none", f"({len(given)} checked)")
sys.exit(1 if unread else 0)
PY
log "up"
compose up -d --no-build
for svc in postgres redis tracker-a tracker-b edge-a edge-b origin; do
    id=$(compose ps -q "$svc")
    [ -n "$id" ] || fail "$svc did not start"
    for _ in $(seq 1 120); do
        state=$(docker inspect --format '{{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}' "$id")
        [ "$state" = healthy ] && break
        sleep 1
    done
    [ "$state" = healthy ] || fail "$svc is $state after 120 s"
done

# The client container's stdin is /dev/null (it must not eat a loop's input); compose's own
# progress lines go to a log that a failure prints.
run_client() { T=300 compose --profile client run --rm -T "$@" </dev/null 2>>"$work/compose.log"; }
check_snapshot() {
    local hf_home=$1
    run_client --entrypoint sh client -c \
        "cd $hf_home/hub/models--acme--demo/snapshots/*/ && sha256sum config.json model.bin" >"$work/got"
    diff "$work/want" "$work/got" >&2 || fail "files under $hf_home differ from the origin's"
}

log "pull through edge-a"
run_client client pull acme/demo --json >"$work/pull-a.json" || fail "pull through edge-a"
check_snapshot /var/cache/zest/hf
log "pull through edge-b (a new cache)"
run_client -e HF_HOME=/var/cache/zest/hf-b -e ZEST_CACHE=/var/cache/zest/zest-b \
    -e HF_ENDPOINT=http://edge-b:8081 client pull acme/demo --json >"$work/pull-b.json" \
    || fail "pull through edge-b"
check_snapshot /var/cache/zest/hf-b

# Prometheus: every target up, the edges and the origin counted the pulls, every alert rule's
# expression evaluates.
query() {
    run_client --entrypoint curl client -fsS --get http://prometheus:9090/api/v1/query \
        --data-urlencode "query=$1"
}
log "prometheus"
for _ in $(seq 1 30); do
    up=$(query 'sum(up{job=~"zest-.*"})' | python3 -c 'import json,sys; r=json.load(sys.stdin)["data"]["result"]; print(r[0]["value"][1] if r else 0)')
    [ "$up" = 5 ] && break
    sleep 2
done
[ "$up" = 5 ] || fail "Prometheus sees $up of 5 zest targets up"
for q in 'sum(zest_edge_bytes_served_total)' 'sum(zest_origin_xorb_bytes_served_total)' \
    'sum(zest_tracker_http_requests_total)' 'count(zest_build_info)'; do
    v=$(query "$q" | python3 -c 'import json,sys; r=json.load(sys.stdin)["data"]["result"]; print(r[0]["value"][1] if r else "none")')
    case $v in none | 0) fail "$q returned $v" ;; esac
    echo "  $q = $v"
done
# Metrics a dashboard can trust: every zest_*_total is a counter, no duration in milliseconds.
run_client --entrypoint curl client -fsS http://prometheus:9090/api/v1/metadata >"$work/metadata" \
    || fail "Prometheus metadata"
python3 - "$work/metadata" <<'PY' || fail "metric types"
import json, sys
meta = json.load(open(sys.argv[1]))["data"]
zest = {name: m[0]["type"] for name, m in meta.items() if name.startswith("zest_")}
bad = [f"{n} is a {t}" for n, t in zest.items() if n.endswith("_total") and t != "counter"]
bad += [f"{n}: durations are seconds" for n in zest if "_milliseconds" in n]
print(f"  {len(zest)} zest metrics typed;", "; ".join(bad) if bad else "counters are counters")
sys.exit(1 if bad or not zest else 0)
PY
# check_queries FILE evaluate|data WHAT: every PromQL expression in FILE (one per line) evaluates,
# and with `data` also returns at least one series.
check_queries() {
    local file=$1 mode=$2 what=$3 n=0 expr
    while IFS= read -r expr; do
        query "$expr" | python3 -c 'import json,sys
r = json.load(sys.stdin)
sys.exit(r["status"] != "success" or (sys.argv[1] == "data" and not r["data"]["result"]))' "$mode" \
            || fail "$what: no answer ($mode) for: $expr"
        n=$((n + 1))
    done <"$file"
    [ $n -gt 0 ] || fail "no $what found"
    echo "  $n $what: $mode ok"
}
python3 - "$root/deploy/prometheus/alerts.yml" >"$work/exprs" <<'PY'
import sys
# The rules file is flat YAML: one `expr:` line per rule.
for line in open(sys.argv[1]):
    line = line.strip()
    if line.startswith("expr:"):
        print(line[len("expr:"):].strip())
PY
check_queries "$work/exprs" evaluate "alert expressions"
# Every Grafana panel's query returns data from this fleet (Grafana itself is not in Debian's
# packages, so the dashboard is checked here rather than rendered).
python3 -c 'import json,sys
for p in json.load(open(sys.argv[1]))["panels"]:
    for t in p["targets"]: print(t["expr"])' "$root/deploy/grafana/dashboards/zest-fleet.json" >"$work/panels"
check_queries "$work/panels" data "dashboard queries"
log "ok: two pulls byte-exact through the compose fleet, Prometheus scrapes all 5 services"
