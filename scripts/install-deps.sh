#!/usr/bin/env bash
# Installs what Conveyor needs to build, test and benchmark, from Debian packages only.
# Idempotent: does nothing (and needs no root) when everything is already present.
set -euo pipefail

packages=(
  g++ make cmake ccache pkg-config
  libboost1.81-dev libboost-json1.81-dev libboost-program-options1.81-dev
  libssl-dev libspdlog-dev libgtest-dev
  redis-tools redis-server python3 python3-redis amqp-tools python3-pika python3-celery
  # tests/fuzz (make fuzz, and the short pass in make test): clang-14 with libFuzzer and the
  # sanitizer runtimes (libclang-rt-14-dev), llvm-symbolizer for readable reports (llvm-14).
  clang-14 libclang-rt-14-dev llvm-14
  # make package: dpkg-shlibdeps (the .deb's Depends from the libraries the binary links).
  dpkg-dev
  # make format-check (CI): the project's .clang-format, with clang-format 14.
  clang-format-14
  # make lint: clang-tidy 14 with the project's .clang-tidy.
  clang-tidy-14
  # tests/integration/test_amqp_queue_args.py runs its cases against a private rabbitmq-server
  # too (ctest integration_rabbitmq.*); the package's own service is never used.
  rabbitmq-server
)
# `scripts/install-deps.sh bench`: also the peers the benchmarks run beside conveyor.
if [ "${1:-}" = bench ]; then
  packages+=(python3-celery python3-pika)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "install-deps: installing ${missing[*]}"
sudo_cmd=()
[ "$(id -u)" -ne 0 ] && sudo_cmd=(sudo)
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
