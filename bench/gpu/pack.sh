#!/usr/bin/env bash
# Packs build/inferd with the shared libraries the GPU machine lacks (its
# Ubuntu has none of our Debian libraries) into .devcarry/inferd-bundle.tar.gz,
# for bench/gpu/device.sh to unpack there. glibc's own libraries stay behind.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
out=.devcarry
rm -rf "$out/stage" && mkdir -p "$out/stage/lib" "$out/stage/tests"
cp build/inferd "$out/stage/"
# Every test binary by default (the unit tests and the conformance runner).
if [ $# -eq 0 ]; then set -- $(cd build/tests && ls); fi
for t in "$@"; do cp "build/tests/$t" "$out/stage/tests/"; done
{ ldd build/inferd; for t in "$@"; do ldd "build/tests/$t"; done; } | awk '$3 ~ /^\// {print $3}' | sort -u | grep -vE '/(libc|libm|libstdc\+\+|libgcc_s|libdl|libpthread|librt)\.so' |
  while read -r lib; do cp -L "$lib" "$out/stage/lib/"; done
find "$out/stage" -type f -exec strip --strip-debug {} + 2>/dev/null || true
tar -C "$out/stage" -czf "$out/inferd-bundle.tar.gz" .
rm -rf "$out/stage"
ls -la "$out/inferd-bundle.tar.gz"
