#!/usr/bin/env bash
# A stand-in for the Dockerfiles' pinned base (python:3.11.11-slim-bookworm) where it cannot be pulled:
# Debian bookworm (debootstrap, minbase) with Debian's Python 3.11 (python3, python3-venv, and
# python-is-python3 so that `python` is on PATH as in the public image), ca-certificates, the same
# apt sources as the public image (bookworm, bookworm-updates, bookworm-security), LANG=C.UTF-8.
# Same Debian release, same Python minor version, the same commands the Dockerfiles call (python,
# apt-get, groupadd, useradd); the Python patch release is Debian's (3.11.2), not 3.11.11.
#
#   deploy/docker/local/base.sh TAG     (as root; skips the work when TAG exists)
set -euo pipefail
tag="${1:?usage: base.sh TAG}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
export CONTAINERS_CONF="${CONTAINERS_CONF:-$(dirname "$0")/containers.conf}"
export CONTAINERS_STORAGE_CONF="${CONTAINERS_STORAGE_CONF:-$(dirname "$0")/storage.conf}"

if buildah inspect --type image "$tag" >/dev/null 2>&1; then
  echo "[base] $tag exists"
  exit 0
fi
echo "[base] building $tag from Debian bookworm packages (debootstrap)"
ctr="$(buildah from scratch)"
trap 'buildah rm "$ctr" >/dev/null 2>&1 || true' EXIT
root="$(buildah mount "$ctr")"
debootstrap --variant=minbase --include=python3,python3-venv,python-is-python3,ca-certificates \
  bookworm "$root" "$mirror" >"${BASE_LOG:-/dev/null}" 2>&1
rm -f "$root/etc/apt/sources.list"
cat >"$root/etc/apt/sources.list.d/debian.sources" <<SOURCES
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
# As the public slim image: apt keeps no package caches and fetches no translations, dpkg installs no
# docs, man pages or translations (what later `apt-get install` layers would otherwise carry: ~85 MB of
# /var/cache/apt/*.bin in each image that installs a package).
cat >"$root/etc/apt/apt.conf.d/docker-clean" <<'APT'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
APT
echo 'Acquire::Languages "none";' >"$root/etc/apt/apt.conf.d/docker-no-languages"
echo 'Acquire::GzipIndexes "true";' >"$root/etc/apt/apt.conf.d/docker-gzip-indexes"
echo 'Apt::AutoRemove::SuggestsImportant "false";' >"$root/etc/apt/apt.conf.d/docker-autoremove-suggests"
cat >"$root/etc/dpkg/dpkg.cfg.d/docker" <<'DPKG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/lintian/*
DPKG
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb \
  "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/var/log/*.log "$root"/var/log/apt/*
buildah umount "$ctr" >/dev/null
buildah config --env LANG=C.UTF-8 \
  --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  --cmd python3 --label org.opencontainers.image.description="local stand-in for python:3.11-slim-bookworm" \
  "$ctr"
buildah commit --quiet "$ctr" "$tag" >/dev/null
echo "[base] $tag built"
