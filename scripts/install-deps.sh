#!/usr/bin/env bash
# Installs the Debian packages the tests and the lab need, only when some are missing
# (so a warm machine never runs apt-get update). Idempotent; needs root.
set -euo pipefail

# containerd, runc and busybox-static: the lab's nodes run pods (busybox is the lab's images);
# binutils: objcopy strips the images' binaries.
packages=(frr bird2 gobgpd exabgp tcpdump iproute2 nftables iptables containernetworking-plugins openssl curl iputils-ping python3-yaml containerd runc busybox-static util-linux binutils)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "deps: all Debian packages present"
else
  echo "deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The daemons are started by our tests in their own namespaces, never as system services.
for svc in frr bird gobgpd exabgp containerd; do
  if systemctl is-enabled "$svc" >/dev/null 2>&1; then
    systemctl disable --now "$svc" >/dev/null 2>&1 || true
  fi
done

command -v cargo >/dev/null || { echo "deps: cargo not found (install Rust with rustup)" >&2; exit 1; }
command -v go >/dev/null || { echo "deps: go not found (needed to build the test control plane)" >&2; exit 1; }
