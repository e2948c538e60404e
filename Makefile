# Quick start: `make run` (install, build, start the broker) and `make test`.
BUILD_DIR ?= build
BUILD_TYPE ?= Release
JOBS ?= $(shell nproc)
DATA_DIR ?= ./data
CONFIG_ARGS ?=

.PHONY: all deps configure build server run test unit integration soak bench bench-durable bench-worker clean format

all: build

deps:
	@./scripts/install-deps.sh

configure: deps
	@cmake -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) $(CONFIG_ARGS) >/dev/null

build: configure
	@cmake --build $(BUILD_DIR) -j $(JOBS)

# Only the broker binary: `make run` need not compile the tests first.
server: configure
	@cmake --build $(BUILD_DIR) -j $(JOBS) --target conveyor

run: server
	mkdir -p $(DATA_DIR)
	$(BUILD_DIR)/conveyor server --data-dir $(DATA_DIR)

# Every test (unit + integration); ctest's summary line is the last thing printed.
test: build
	@./scripts/run-tests.sh $(BUILD_DIR) $(JOBS)

unit: build
	@./scripts/run-tests.sh $(BUILD_DIR) $(JOBS) -L unit

integration: build
	@./scripts/run-tests.sh $(BUILD_DIR) $(JOBS) -L integration

# T1 soak: the kill -9 crash test under load for 10 minutes (the CI run is ~25 s).
soak: build
	cd tests/integration && CONVEYOR_SOAK_SECONDS=600 CONVEYOR_BIN=$(abspath $(BUILD_DIR))/conveyor \
		/usr/bin/python3 -m unittest -v test_crash_recovery.CrashUnderLoadTest.test_kill9_under_load_fsync_always

bench: build
	./bench/run.sh

# Durable conveyor against Redis AOF (T15), recovery time, data-dir size under churn.
# conveyor worker against a Celery 5 worker (issue 4); installs python3-celery first.
bench-worker: build
	./scripts/install-deps.sh bench
	./bench/worker.sh $(WORKER_ARGS)

bench-durable: build
	./bench/durable.sh $(DURABLE_ARGS)

format:
	clang-format -i $$(git ls-files '*.cpp' '*.hpp')

clean:
	rm -rf $(BUILD_DIR)
