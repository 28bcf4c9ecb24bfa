#!/usr/bin/env bash
# The system packages and services that `make run`, `make test` and `.ci/run` need, in one place.
#
#   deploy/local/system-deps.sh run|test|images [--check]
#
# run:  libzbar0 (the codec), fonts-wqy-microhei (the CJK font of the print sheets), python3-venv, make,
#       Node.js with npm (the mini-program's tools under miniprogram/, installed by the Makefile),
#       rabbitmq-server running on 127.0.0.1:5672 with its management plugin on 15672 (the console's
#       queue dashboard).
# test: all of run, plus chromium (the console's browser test, make bench-console).
# images: buildah, podman, runc and debootstrap (make images, make images-smoke: deploy/docker/local/).
#
# As root on Debian/Ubuntu (apt-get present) it installs what is missing, starts RabbitMQ and enables the
# management plugin. Otherwise it changes nothing, prints the exact commands to run and exits 1, so that
# `make test` stops before pytest collects anything. --check only reports (one line per missing thing,
# exit 1 if any). The broker part is skipped when AMQP_URL names another host, or with
# SYSTEM_DEPS_BROKER=0 (a caller that brings its own broker, such as make load).
#
# For the tests of this script (tests/unit/test_system_deps.py), every probe can be pointed elsewhere:
# SYSTEM_DEPS_PREFIX (a root for the files looked at), SYSTEM_DEPS_LDCONFIG (the command listing the
# linker cache), SYSTEM_DEPS_UID, SYSTEM_DEPS_AMQP_PORT, SYSTEM_DEPS_MGMT_PORT, SYSTEM_DEPS_WAIT_S.
set -uo pipefail

profile="${1:-}"
mode="${2:-ensure}"
case "$profile" in run | test | images) ;; *)
  echo "usage: $0 run|test|images [--check]" >&2
  exit 2
  ;;
esac
case "$mode" in ensure | --check) ;; *)
  echo "usage: $0 run|test|images [--check]" >&2
  exit 2
  ;;
esac

prefix="${SYSTEM_DEPS_PREFIX:-}"
uid="${SYSTEM_DEPS_UID:-$(id -u)}"
amqp_port="${SYSTEM_DEPS_AMQP_PORT:-5672}"
mgmt_port="${SYSTEM_DEPS_MGMT_PORT:-15672}"
wait_s="${SYSTEM_DEPS_WAIT_S:-120}"
NODE_MIN=18 # Debian bookworm's nodejs; the mini-program's jest runs on it

say() { echo "[deps] $*"; }
has() { command -v "$1" >/dev/null 2>&1; }
# rabbitmq-server and rabbitmqctl live in /usr/sbin, which a user's PATH often lacks.
has_sbin() { has "$1" || [ -x "$prefix/usr/sbin/$1" ]; }
sbin() { if has "$1"; then command -v "$1"; else echo "$prefix/usr/sbin/$1"; fi; }
ldcache() { ${SYSTEM_DEPS_LDCONFIG:-ldconfig -p} 2>/dev/null; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

broker_local() {
  [ "${SYSTEM_DEPS_BROKER:-1}" != 0 ] || return 1
  local url="${AMQP_URL:-amqp://127.0.0.1:5672/}" host
  host="${url#*://}"
  host="${host##*@}"
  host="${host%%[:/]*}"
  case "$host" in 127.0.0.1 | localhost | "") return 0 ;; *) return 1 ;; esac
}

node_ok() {
  has node || return 1
  local version
  version="$(node --version 2>/dev/null)" || return 1
  version="${version#v}"
  [ "${version%%.*}" -ge "$NODE_MIN" ] 2>/dev/null
}

zbar_ok() {
  ldcache | grep -Eq '(^|[[:space:]])libzbar\.so\.0[[:space:]]' && return 0
  # The cache can be mid-rewrite while another apt-get runs: the library file itself also counts.
  compgen -G "$prefix/usr/lib/*/libzbar.so.0" >/dev/null || compgen -G "$prefix/lib/*/libzbar.so.0" >/dev/null
}

# --- what is missing ----------------------------------------------------------------------------------
missing=()
broker_start=0
broker_plugin=0
if [ "$profile" = images ]; then
  for tool in buildah podman runc debootstrap; do has_sbin "$tool" || missing+=("$tool"); done
else
  zbar_ok || missing+=(libzbar0)
  [ -f "$prefix/usr/share/fonts/truetype/wqy/wqy-microhei.ttc" ] || missing+=(fonts-wqy-microhei)
  has make || missing+=(make)
  { has python3 && python3 -c 'import venv, ensurepip' 2>/dev/null; } || missing+=(python3-venv)
  node_ok || missing+=(nodejs)
  has npm || missing+=(npm)
  if [ "$profile" = test ]; then
    [ -x "$prefix/usr/bin/chromium" ] || missing+=(chromium)
  fi
  if broker_local; then
    has_sbin rabbitmq-server || missing+=(rabbitmq-server)
    port_open "$amqp_port" || broker_start=1
    port_open "$mgmt_port" || broker_plugin=1
  fi
fi

if [ "$mode" = --check ]; then
  for p in "${missing[@]}"; do echo "package $p"; done
  [ "$broker_start" = 1 ] && echo "start rabbitmq-server"
  [ "$broker_plugin" = 1 ] && echo "enable rabbitmq_management"
  [ "${#missing[@]}" -eq 0 ] && [ "$broker_start" = 0 ] && [ "$broker_plugin" = 0 ]
  exit
fi

if [ "${#missing[@]}" -eq 0 ] && [ "$broker_start" = 0 ] && [ "$broker_plugin" = 0 ]; then
  exit 0
fi

# --- not root, or not Debian: say exactly what to run, change nothing ---------------------------------
if [ "$uid" != 0 ] || ! has apt-get; then
  say "this machine lacks what 'make $profile' needs; run (as root, on Debian/Ubuntu):"
  if [ "${#missing[@]}" -gt 0 ]; then
    echo "  sudo apt-get update && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y ${missing[*]}"
  fi
  [ "$broker_start" = 1 ] && echo "  sudo rabbitmq-server -detached"
  [ "$broker_plugin" = 1 ] && echo "  sudo rabbitmq-plugins enable rabbitmq_management"
  if ! has apt-get; then
    say "(no apt-get here: these are Debian's package names; install the same with your package manager)"
  else
    say "or run this script as root: sudo $0 $profile"
  fi
  exit 1
fi

# --- root on Debian/Ubuntu: install, start, enable ----------------------------------------------------
if [ "${#missing[@]}" -gt 0 ]; then
  say "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq || exit 1
  apt-get install -y -qq --no-install-recommends "${missing[@]}" || exit 1
fi
if [ "$profile" != images ] && broker_local; then
  if ! port_open "$amqp_port"; then
    say "starting rabbitmq-server"
    "$(sbin rabbitmq-server)" -detached
    for _ in $(seq 1 "$wait_s"); do port_open "$amqp_port" && break; sleep 1; done
    port_open "$amqp_port" || {
      say "RabbitMQ did not start within $wait_s s; see /var/log/rabbitmq/"
      exit 1
    }
  fi
  # The broker accepts connections a little before rabbitmqctl (the tests' vhosts) answers.
  for _ in $(seq 1 "$wait_s"); do "$(sbin rabbitmqctl)" -q status >/dev/null 2>&1 && break; sleep 1; done
  if ! port_open "$mgmt_port"; then
    say "enabling rabbitmq_management (the console dashboard's queue figures)"
    "$(sbin rabbitmq-plugins)" -q enable rabbitmq_management >/dev/null || exit 1
    for _ in $(seq 1 "$wait_s"); do port_open "$mgmt_port" && break; sleep 1; done
    port_open "$mgmt_port" || {
      say "the management plugin did not listen on $mgmt_port within $wait_s s"
      exit 1
    }
  fi
fi
say "installed and started what was missing"
