#!/usr/bin/env bash
# Installs everything inferd needs to build and test, from Debian's packages
# and PyPI. Idempotent and quiet when everything is already there.
set -euo pipefail

DEBIAN_PACKAGES=(
  build-essential cmake pkg-config
  libdnnl-dev                            # oneDNN: CPU kernels
  libprotobuf-c-dev protobuf-c-compiler  # ONNX and gRPC messages
  libnghttp2-dev                         # HTTP/2: the gRPC server's transport and inferd perf
  openssl                                # self-signed certificates in the TLS tests
  libssl-dev                             # TLS for the gRPC server (OpenSSL under libevent)
  nghttp2-client                         # h2load: gRPC bytes on the wire in the compression test
  libcmocka-dev                          # unit tests
  clang-14 libclang-rt-14-dev libomp-14-dev  # fuzz targets: libFuzzer with ASan+UBSan (tests/fuzz)
  libonnx-testdata                       # ONNX conformance tests
  libevent-dev libjansson-dev            # HTTP frontend
  libturbojpeg0-dev libpng-dev zlib1g-dev
  prometheus                             # metrics tests: a real scraper, and promtool for the alert rules
  python3 python3-pip
)

missing=()
for p in "${DEBIAN_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "install-deps: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
req="$here/requirements.txt"
if [ -f "$req" ]; then
  # pip is slow to decide that nothing needs doing; ask Python first.
  if ! python3 "$here/check_requirements.py" "$req" 2>/dev/null; then
    echo "install-deps: installing Python packages from scripts/requirements.txt"
    python3 -m pip install -q --disable-pip-version-check -r "$req" 2>&1 | grep -v "Running pip as the 'root' user" || true
  fi
fi
