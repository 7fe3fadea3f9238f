# Thin wrapper around CMake. `make` builds build/inferd; `make asan` builds the
# sanitizer tree in build-asan/; `make test` runs every test (see scripts/test.sh).
JOBS ?= $(shell nproc)

.PHONY: all build asan test unit clean
all: build

build:
	@cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build build -j $(JOBS)

asan:
	@cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DINFERD_ASAN=ON -DINFERD_CUDA=OFF >/dev/null
	@cmake --build build-asan -j $(JOBS)

unit: build
	@cd build && ctest --output-on-failure -j $(JOBS)

test:
	@scripts/test.sh

clean:
	rm -rf build build-asan
