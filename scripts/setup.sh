#!/usr/bin/env bash
# Install everything masq needs to build and test, idempotently and
# non-interactively. Safe to run again: it only adds what is missing.
set -euo pipefail

die() { echo "setup: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "run as root (it installs Debian packages): sudo $0"
command -v apt-get >/dev/null || die "needs a Debian or Ubuntu system with apt-get"

. /etc/os-release
export DEBIAN_FRONTEND=noninteractive

# Debian 12's own ngtcp2 0.12 / nghttp3 0.8 lack the HTTP/3 datagram and
# Extended CONNECT support masq needs; bookworm-backports carries 1.11 / 1.8.
BACKPORTS=()
if [ "${ID:-}" = debian ] && [ "${VERSION_CODENAME:-}" = bookworm ]; then
  src=/etc/apt/sources.list.d/bookworm-backports.sources
  if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    cat >"$src" <<'SRC'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
    NEED_UPDATE=1
  fi
  BACKPORTS=(-t bookworm-backports)
fi

QUIC_PKGS=(libngtcp2-dev libngtcp2-crypto-gnutls-dev libnghttp3-dev)
PKGS=(build-essential cmake pkg-config clang libclang-rt-14-dev
      libgnutls28-dev gnutls-bin libinih-dev libcmocka-dev libmnl-dev
      iproute2 python3 dnsutils dnsmasq-base procps
      libnftables-dev nftables iperf3 iputils-ping curl wireguard-tools tcpdump)

missing() {
  local p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || echo "$p"
  done
}

# The QUIC libraries must be new enough even if an old version is installed.
quic_ok() {
  pkg-config --atleast-version=1.11 libngtcp2 2>/dev/null &&
  pkg-config --atleast-version=1.11 libngtcp2_crypto_gnutls 2>/dev/null &&
  pkg-config --atleast-version=1.8 libnghttp3 2>/dev/null
}

todo=$(missing "${PKGS[@]}")
if [ -n "$todo" ] || ! quic_ok || [ -n "${NEED_UPDATE:-}" ]; then
  apt-get update -qq || die "apt-get update failed: check the package sources in /etc/apt"
fi
if [ -n "$todo" ]; then
  # shellcheck disable=SC2086
  apt-get install -y -qq --no-install-recommends $todo >/dev/null ||
    die "could not install: $todo"
fi
if ! quic_ok; then
  apt-get install -y -qq --no-install-recommends "${BACKPORTS[@]}" "${QUIC_PKGS[@]}" >/dev/null ||
    die "could not install ngtcp2 >= 1.11 and nghttp3 >= 1.8 (${QUIC_PKGS[*]})"
  quic_ok || die "ngtcp2 >= 1.11 / nghttp3 >= 1.8 still missing after install"
fi
# The benchmark's baseline: Debian 12's wireguard-go 0.0.20220316 predates
# wireguard-go's TUN offloads (GSO/GRO), which a user would have today;
# bookworm-backports carries 0.0.20231211, which has them.
wg_ok() {
  dpkg --compare-versions "$(dpkg-query -W -f='${Version}' wireguard-go 2>/dev/null || echo 0)" \
    ge 0.0.20231211
}
if ! wg_ok; then
  [ -n "$todo" ] || apt-get update -qq || die "apt-get update failed: check the package sources in /etc/apt"
  apt-get install -y -qq --no-install-recommends "${BACKPORTS[@]}" wireguard-go >/dev/null ||
    die "could not install wireguard-go (the benchmark's baseline)"
  wg_ok || warn_wg=1
fi
echo "setup: dependencies present (ngtcp2 $(pkg-config --modversion libngtcp2), nghttp3 $(pkg-config --modversion libnghttp3), gnutls $(pkg-config --modversion gnutls))"
[ -z "${warn_wg:-}" ] || echo "setup: note: wireguard-go is older than 0.0.20231211 (no TUN offloads); bench/compare.sh will say so"
