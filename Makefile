# KTWIN Edge — the three entry points. Each installs the Debian packages it
# needs when they are missing, configures, builds, then runs.
#
#   make demo    build (release) and run the main job on embedded defaults
#   make check   build with ASan+UBSan and run every test
#   make bench   run every benchmark (make bench ONLY=<name> runs one)

SHELL := /bin/bash
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
ONLY ?=

# Build and run dependencies (Debian 12 package names).
PACKAGES := build-essential cmake pkg-config \
	libyaml-dev libcjson-dev libuv1-dev libcmocka-dev libsqlite3-dev sqlite3 \
	libwebsockets-dev libprotobuf-c-dev protobuf-c-compiler libpaho-mqtt-dev \
	libhiredis-dev libcurl4-openssl-dev libssl-dev \
	mosquitto mosquitto-clients redis-server openssl python3

.PHONY: demo check bench deps build-dev build-release lint clean

deps:
	@missing=$$(for p in $(PACKAGES); do \
		dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; \
	done); \
	if [ -n "$$missing" ]; then \
		echo "installing:" $$missing; \
		if [ "$$(id -u)" != 0 ]; then SUDO=sudo; fi; \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
	fi

build-dev: deps
	cmake --preset dev -G "Unix Makefiles" >/dev/null
	cmake --build build/dev -j $(JOBS)

build-release: deps
	cmake --preset release -G "Unix Makefiles" >/dev/null
	cmake --build build/release -j $(JOBS)

lint:
	@scripts/lint.sh

check: build-dev lint
	cd build/dev && ctest --output-on-failure -j $(JOBS)

demo: build-release
	@scripts/demo.sh

bench: build-release
	@bench/run.sh $(ONLY)

clean:
	rm -rf build bench-results
