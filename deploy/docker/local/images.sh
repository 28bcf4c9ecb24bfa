#!/usr/bin/env bash
# make images: every service image from deploy/docker/<service>.Dockerfile, with buildah, unchanged
# Dockerfiles. Run as root from the repository root:
#
#   deploy/docker/local/images.sh [SERVICE...]        (default: all five)
#
# The base: BASE_IMAGE if set; else the Dockerfiles' pinned public image if it can be pulled (60 s);
# else a stand-in built from Debian packages (base.sh, once). Images are tagged
# $IMAGE_PREFIX/<service>:$IMAGE_TAG (localhost/gradphoto/...:dev). Layers are cached (--layers), so a
# second build only redoes what changed. Timings go to var/images/build-times.tsv.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here/../../.."
export CONTAINERS_CONF="${CONTAINERS_CONF:-$here/containers.conf}"
export CONTAINERS_STORAGE_CONF="${CONTAINERS_STORAGE_CONF:-$here/storage.conf}"
prefix="${IMAGE_PREFIX:-localhost/gradphoto}"
tag="${IMAGE_TAG:-dev}"
local_base="${LOCAL_BASE_IMAGE:-localhost/gradphoto/python-base:3.11-bookworm}"
out="${IMAGES_VAR:-var/images}"
mkdir -p "$out"
services=("$@")
[ "${#services[@]}" -gt 0 ] || services=(gateway codec imaging matching notify)

for tool in buildah podman; do
  command -v "$tool" >/dev/null || {
    echo "[images] $tool is missing: run as root: apt-get install -y buildah podman runc debootstrap"
    exit 1
  }
done

pinned="$(sed -n 's/^ARG BASE_IMAGE=//p' deploy/docker/gateway.Dockerfile)"
base="${BASE_IMAGE:-}"
if [ -z "$base" ]; then
  if buildah inspect --type image "$pinned" >/dev/null 2>&1 || timeout 60 buildah pull -q "$pinned" >/dev/null 2>&1; then
    base="$pinned"
  else
    echo "[images] $pinned cannot be pulled here: using a base built from Debian packages"
    "$here/base.sh" "$local_base"
    base="$local_base"
  fi
fi
echo "[images] base: $base"

# This machine's egress goes through a proxy with its own CA (in the host's bundle) and its apt mirror
# wants its own settings: lend both to the build's RUN steps only (bind mounts, not in any layer).
mounts=()
if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
  printf '[global]\ncert = /etc/ssl/certs/host-ca-bundle.crt\n' >"$out/pip.conf"
  mounts+=(-v /etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/host-ca-bundle.crt:ro)
  mounts+=(-v "$PWD/$out/pip.conf:/etc/pip.conf:ro")
fi
for conf in /etc/apt/apt.conf.d/99artifact-registry; do
  [ -f "$conf" ] && mounts+=(-v "$conf:/etc/apt/apt.conf.d/$(basename "$conf"):ro")
done

[ -f "$out/build-times.tsv" ] || printf 'when\tservice\tseconds\tcpu_seconds\n' >"$out/build-times.tsv"
for service in "${services[@]}"; do
  echo "[images] building $prefix/$service:$tag"
  start=$(date +%s.%N)
  cpu_before=$(awk '{print $14+$15+$16+$17}' /proc/$$/stat)
  buildah bud --layers --format docker --network host --isolation oci \
    --build-arg "BASE_IMAGE=$base" "${mounts[@]}" \
    -f "deploy/docker/$service.Dockerfile" -t "$prefix/$service:$tag" . >"$out/build-$service.log" 2>&1 || {
    tail -40 "$out/build-$service.log"
    echo "[images] $service failed; full log: $out/build-$service.log"
    exit 1
  }
  end=$(date +%s.%N)
  cpu_after=$(awk '{print $14+$15+$16+$17}' /proc/$$/stat)
  ticks=$(getconf CLK_TCK)
  wall=$(awk -v a="$start" -v b="$end" 'BEGIN {printf "%.1f", b - a}')
  cpu=$(awk -v a="$cpu_before" -v b="$cpu_after" -v t="$ticks" 'BEGIN {printf "%.1f", (b - a) / t}')
  printf '%s\t%s\t%s\t%s\n' "$(date -u +%FT%TZ)" "$service" "$wall" "$cpu" >>"$out/build-times.tsv"
  echo "[images] $service built in $wall s ($cpu CPU-s)"
done
buildah images --format '{{.Name}}:{{.Tag}} {{.Size}}' | grep "^$prefix/" || true
