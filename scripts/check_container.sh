#!/usr/bin/env bash
# Builds the serving image with podman, runs it on a data folder that holds a registered
# production model, and gets a prediction from it over HTTP. `make check-container`; CI too.
#
# - No Docker engine is needed: podman (Debian packages podman, runc, debootstrap; installed
#   here when missing and running as root) with the settings that work on these machines:
#   runc, cgroupfs, host network, and no default ulimits (CONTAINERS_CONF).
# - Registries of container images are not needed either: the base image is a minimal Debian
#   made with debootstrap (python3 + venv + CA certificates) and imported as
#   localhost/bookworm-min; it stays in podman's storage and is reused by later runs.
# - The model is trained on the host (the serving image has no torch) from a few photos per
#   species, into a temporary data folder mounted at the same path in the container: a local
#   MLflow store records absolute artifact paths.
#
# Environment: VENV (default .venv), CHAMPIPY_DATASET_DIR (species folders),
# CHECK_CONTAINER_PER_SPECIES (photos per species for the quick model, default 12),
# CHECK_CONTAINER_BASE (base image, default localhost/bookworm-min; python:3.11-slim works
# where a registry is reachable), CHECK_CONTAINER_KEEP=1 keeps the container and folder.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$(pwd)
started=$(date +%s)

VENV=${VENV:-.venv}
BIN=$root/$VENV/bin
IMAGE=${CHECK_CONTAINER_IMAGE:-localhost/champipy:check}
BASE=${CHECK_CONTAINER_BASE:-localhost/bookworm-min}
PER_SPECIES=${CHECK_CONTAINER_PER_SPECIES:-12}
DATASET=${CHAMPIPY_DATASET_DIR:-$(realpath -m ../shared/datasets/champipy/train)}
NAME=champipy-check-$$

say() { echo "check-container [$(( $(date +%s) - started )) s]: $*"; }
fail() { echo "check-container: FAILED: $*" >&2; exit 1; }

[ -x "$BIN/champipy" ] || fail "$BIN/champipy is missing: run 'make install' first"
[ -d "$DATASET" ] || fail "no dataset folder at $DATASET (set CHAMPIPY_DATASET_DIR)"

# --- podman ----------------------------------------------------------------------------------
missing=()
for tool in podman runc debootstrap; do command -v "$tool" >/dev/null || missing+=("$tool"); done
if [ ${#missing[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] || fail "install the Debian packages: ${missing[*]}"
  say "installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman runc debootstrap >/dev/null
fi

work=$(mktemp -d /tmp/champipy-container.XXXXXX)
cleanup() {
  local rc=$?
  if [ "${CHECK_CONTAINER_KEEP:-0}" = 1 ]; then
    echo "check-container: kept container $NAME and folder $work"
  else
    pod rm -f "$NAME" >/dev/null 2>&1 || true
    rm -rf "$work"
  fi
  exit "$rc"
}
trap cleanup EXIT
printf '[containers]\ndefault_ulimits = []\n' > "$work/containers.conf"
export CONTAINERS_CONF=$work/containers.conf
pod() { podman --runtime runc --cgroup-manager=cgroupfs "$@"; }

# The Debian mirror this machine's apt already uses (deb822 sources, else the one-line form);
# DEBIAN_MIRROR overrides it.
debian_mirror() {
  if [ -n "${DEBIAN_MIRROR:-}" ]; then echo "$DEBIAN_MIRROR"; return; fi
  local uri
  uri=$(awk '/^URIs:/ { print $2; exit }' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
  [ -n "$uri" ] || uri=$(awk '$1 == "deb" && $2 !~ /security/ { print $2; exit }' /etc/apt/sources.list 2>/dev/null || true)
  [ -n "$uri" ] || fail "no Debian mirror in apt's sources: set DEBIAN_MIRROR"
  echo "$uri"
}

# --- base image, made once -------------------------------------------------------------------
if [ "$BASE" = localhost/bookworm-min ] && ! pod image exists "$BASE"; then
  say "making $BASE with debootstrap (once; a few minutes)"
  debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
    bookworm "$work/rootfs" "$(debian_mirror)" >"$work/debootstrap.log" 2>&1 \
    || { tail -20 "$work/debootstrap.log"; fail "debootstrap"; }
  tar -C "$work/rootfs" -c . | pod import - "$BASE" >/dev/null 2>&1
  rm -rf "$work/rootfs"
fi

# --- build -----------------------------------------------------------------------------------
# pip inside the build trusts the host's CA bundle (for networks that inspect TLS) and uses
# the host's local wheel folders when there are any; both are mounted for the build only.
build_mounts=()
pip_conf=$work/pip.conf
{
  echo "[global]"
  if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
    echo "cert = /etc/ssl/certs/ca-certificates.crt"
    build_mounts+=(--volume /etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro)
  fi
  if [ -d /opt/wheels ]; then
    echo "find-links = /opt/wheels"
    build_mounts+=(--volume /opt/wheels:/opt/wheels:ro)
  fi
} > "$pip_conf"
build_mounts+=(--volume "$pip_conf:/etc/pip.conf:ro")
say "building $IMAGE (target serving, base $BASE)"
pod build --format docker --network=host --layers \
  --build-arg BASE_IMAGE="$BASE" --target serving "${build_mounts[@]}" \
  -t "$IMAGE" . >"$work/build.log" 2>&1 || { tail -40 "$work/build.log"; fail "podman build"; }
build_done=$(date +%s)
say "image built: $(pod image inspect --format '{{.Size}}' "$IMAGE" | awk '{printf "%.0f MB", $1 / 1e6}')"

# What the image must be: no torch, a non-root user, a health check.
! pod run --rm --network=host "$IMAGE" python3 -c "import torch" 2>/dev/null \
  || fail "the serving image contains torch"
[ "$(pod run --rm --network=host "$IMAGE" id -u)" = 10001 ] || fail "the serving image does not run as uid 10001"
healthcheck=$(pod image inspect --format '{{json .Config.Healthcheck}}' "$IMAGE")
[[ $healthcheck == */status* ]] || fail "the serving image has no HEALTHCHECK on /status"

# --- a production model, trained on the host -------------------------------------------------
data=$work/data
photos=$work/photos
mkdir -p "$data" "$photos"
for species in "$DATASET"/*/; do
  name=$(basename "$species")
  mkdir -p "$photos/$name"
  mapfile -t files < <(find "$species" -maxdepth 1 -type f | sort)
  for f in "${files[@]:0:$PER_SPECIES}"; do ln -s "$f" "$photos/$name/"; done
done
say "training a quick model (lite0, frozen features) on $PER_SPECIES photos per species"
CHAMPIPY_DATA_DIR=$data "$BIN/champipy" train --data "$photos" --backbone lite0 --seed 0 --promote \
  >"$work/train.log" 2>&1 \
  || { tail -30 "$work/train.log"; fail "champipy train"; }
password=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
echo "$password" | CHAMPIPY_DATA_DIR=$data "$BIN/champipy" users add checker --password-stdin >/dev/null
chown -R 10001:10001 "$data"  # the image's user owns its data folder
train_done=$(date +%s)

# --- run and predict -------------------------------------------------------------------------
port=$("$BIN/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
say "starting the container on 127.0.0.1:$port"
# (podman 4 prints errors about systemd timers for the HEALTHCHECK: `healthcheck run` below
# runs it by hand instead.)
pod run -d --name "$NAME" --network=host \
  --volume "$data:$data" \
  -e CHAMPIPY_DATA_DIR="$data" -e CHAMPIPY_HOST=127.0.0.1 -e CHAMPIPY_PORT="$port" \
  "$IMAGE" >/dev/null 2>"$work/run.log" || { cat "$work/run.log"; fail "podman run"; }
base_url=http://127.0.0.1:$port
for _ in $(seq 1 120); do
  if curl -fsS "$base_url/status" 2>/dev/null | jq -e '.model.loaded == true' >/dev/null; then
    break
  fi
  [ "$(pod inspect --format '{{.State.Running}}' "$NAME")" = true ] \
    || { pod logs "$NAME" | tail -40; fail "the container stopped"; }
  sleep 1
done
curl -fsS "$base_url/status" | jq -e '.model.loaded == true' >/dev/null \
  || { pod logs "$NAME" | tail -40; fail "no model loaded within 120 s"; }

mapfile -t linked < <(find "$photos" -mindepth 2 -maxdepth 2 | sort)
photo=$(readlink -f "${linked[0]}")
answer=$(curl -sS -u "checker:$password" -F "file=@$photo" -F top_k=3 \
  -H "X-Request-ID: check-container-1" -D "$work/headers" "$base_url/predictions")
echo "$answer" | jq -e '(.results | length) == 3 and .model.version != null and .cached == false' >/dev/null \
  || { echo "$answer"; pod logs "$NAME" | tail -40; fail "no prediction"; }
grep -qi '^x-request-id: check-container-1' "$work/headers" || fail "the request id was not echoed"
metrics=$(curl -fsS "$base_url/metrics")
[[ $metrics == *'champipy_predictions_total{cached="false"} 1.0'* ]] || fail "/metrics does not count the prediction"
pod healthcheck run "$NAME" || fail "the container's health check failed"
logs=$(pod logs "$NAME" 2>&1)
[[ $logs == *'"request_id": "check-container-1"'* ]] || fail "no JSON log line with the request id"

species=$(echo "$answer" | jq -r '.results[0].species')
probability=$(echo "$answer" | jq -r '.results[0].probability')
say "prediction from the container: $species ($probability) for $(basename "$(dirname "$photo")")/$(basename "$photo")"
say "OK: build $(( build_done - started )) s, train $(( train_done - build_done )) s, run+predict $(( $(date +%s) - train_done )) s"
