#!/usr/bin/env bash
# scripts/deps.sh — install what marketd needs to build and test on Debian 12
# (apt-get, as root), then cache the Kafka broker jars for integration tests.
# Idempotent and quick when everything is there: `apt-get update` only runs
# when a package is actually missing.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

packages=(
    build-essential pkg-config        # compiler, make, pkg-config --libs
    liblmdb-dev lmdb-utils            # event store
    librdkafka-dev                    # Kafka client (2.0.2 on Debian 12)
    libmsgpack-dev libjansson-dev     # encodings
    libcmocka-dev                     # unit tests
    libssl-dev libmicrohttpd-dev      # HTTP endpoint
    valgrind clang cppcheck clang-format  # checks
    libclang-rt-14-dev                # libFuzzer and ASan runtimes for clang (make fuzz)
    gnuplot-nox curl jq               # bench plots, HTTP probes, JSON in shell tests
    librdkafka1 xxd                   # runtime client; hex dumps in tests
    prometheus man-db                 # promtool + a server (test_ops.sh); man -l (man pages)
)
# Java and Maven only run the local Kafka broker (scripts/kafka.sh); any
# java/mvn already on PATH will do (e.g. a JDK installed outside apt).
command -v java >/dev/null 2>&1 || packages+=(default-jdk-headless)
command -v mvn >/dev/null 2>&1 || packages+=(maven)

# dpkg -s exits 0 for removed-but-configured packages too: check the status.
installed() {
    [[ $(dpkg-query -W -f='${Status}' "$1" 2>/dev/null) == "install ok installed" ]]
}

missing=()
for p in "${packages[@]}"; do
    installed "$p" || missing+=("$p")
done

if ((${#missing[@]})); then
    echo "deps.sh: installing ${missing[*]}"
    sudo=()
    if ((EUID != 0)); then
        command -v sudo >/dev/null 2>&1 || { echo "deps.sh: run as root (missing: ${missing[*]})" >&2; exit 1; }
        sudo=(sudo)
    fi
    export DEBIAN_FRONTEND=noninteractive
    "${sudo[@]}" apt-get update -q
    # --no-install-recommends: recommends (docs, GUI bits) only cost time here.
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -q --no-install-recommends -o Dpkg::Use-Pty=0 "${missing[@]}"
else
    echo "deps.sh: all Debian packages present"
fi

# Download the Kafka broker jars now (Maven Central), so `make kafka-up`
# and the integration tests never wait for it. No-op when cached.
bash "$here/kafka.sh" fetch
