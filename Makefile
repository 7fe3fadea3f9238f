# Thin wrapper around CMake. `make` builds build/inferd; `make ASAN=1` (or
# `make asan`) builds the ASan+UBSan tree in build-asan/; `make unit` runs the
# ctest suites of the tree just built; `make test` runs every test
# (scripts/test.sh).
JOBS ?= $(shell nproc)
ifeq ($(ASAN),1)
all: asan
unit: asan
	@cd build-asan && ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure -j $(JOBS)
endif

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
