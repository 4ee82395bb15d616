#!/usr/bin/env bash
# Installs nativelm's build and test dependencies from Debian 12's packages.
# Idempotent: installs only what is missing. Needs root or sudo.
set -euo pipefail
packages=(
  build-essential cmake ninja-build pkg-config git ca-certificates curl
  nlohmann-json3-dev libfmt-dev libspdlog-dev libcli11-dev libpcre2-dev libutf8proc-dev
  libcpp-httplib-dev libgtest-dev libgmock-dev libbenchmark-dev
  python3 python3-jinja2 clang libclang-rt-14-dev
)
command -v node >/dev/null 2>&1 || packages+=(nodejs)
command -v npm >/dev/null 2>&1 || packages+=(npm)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
echo "dependencies ready"
