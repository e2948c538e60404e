# Quick start: `make run` (install, build, start the broker) and `make test`.
BUILD_DIR ?= build
BUILD_TYPE ?= Release
JOBS ?= $(shell nproc)
DATA_DIR ?= ./data
CONFIG_ARGS ?=

.PHONY: all deps configure build server run test unit integration bench clean format

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

bench: build
	./bench/run.sh

format:
	clang-format -i $$(git ls-files '*.cpp' '*.hpp')

clean:
	rm -rf $(BUILD_DIR)
