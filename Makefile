# Quick start: `make run` (install, build, start the broker) and `make test`.
BUILD_DIR ?= build
BUILD_TYPE ?= Release
JOBS ?= $(shell nproc)
DATA_DIR ?= ./data
CONFIG_ARGS ?=

.PHONY: all deps configure build server run test unit integration soak bench bench-durable bench-worker bench-amqp clean format \
	fuzz fuzz-build test-asan format-check lint install package

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

# The broker as a system service (docs/install.md): `make install` puts conveyor in
# $(PREFIX)/bin, the systemd unit in $(PREFIX)/lib/systemd/system and conveyor.conf in
# /etc/conveyor (cmake -DCONVEYOR_CONF_DIR=... to change); `make package` builds
# $(BUILD_DIR)/conveyor_<version>_<arch>.deb (apt install ./build/conveyor_*.deb). Both
# build only the binary.
PREFIX ?= /usr/local
install: server
	cmake --install $(BUILD_DIR) --prefix $(PREFIX) --component server

package: server
	cd $(BUILD_DIR) && cpack -G DEB

# Every test (unit + integration), after a short pass of every fuzz target (FUZZ_SHORT_SECONDS
# each, in build-fuzz/); ctest's summary line is the last thing printed, then a line naming
# the fuzz failure if there was one.
test: build fuzz-build
	@FUZZ_DIR=$(FUZZ_DIR) ./scripts/fuzz.sh --no-build --seconds $(FUZZ_SHORT_SECONDS) --jobs $(JOBS); fuzz=$$?; \
	./scripts/run-tests.sh $(BUILD_DIR) $(JOBS); tests=$$?; \
	if [ $$fuzz -ne 0 ]; then echo "fuzz short pass FAILED (see above and $(FUZZ_DIR)/logs/)"; fi; \
	[ $$fuzz -eq 0 ] && [ $$tests -eq 0 ]

unit: build
	@./scripts/run-tests.sh $(BUILD_DIR) $(JOBS) -L unit

integration: build
	@./scripts/run-tests.sh $(BUILD_DIR) $(JOBS) -L integration

# T1 soak: the kill -9 crash test under load for 10 minutes (the CI run is ~25 s).
soak: build
	cd tests/integration && CONVEYOR_SOAK_SECONDS=600 CONVEYOR_BIN=$(abspath $(BUILD_DIR))/conveyor \
		/usr/bin/python3 -m unittest -v test_crash_recovery.CrashUnderLoadTest.test_kill9_under_load_fsync_always

# libFuzzer targets (tests/fuzz/, docs/fuzzing.md), built with clang-14 in $(FUZZ_DIR); each
# runs FUZZ_SECONDS. New inputs and crash files go to $(FUZZ_DIR), never to the committed corpus.
FUZZ_DIR ?= build-fuzz
FUZZ_SECONDS ?= 60
FUZZ_SHORT_SECONDS ?= 10
fuzz-build: deps
	@FUZZ_DIR=$(FUZZ_DIR) ./scripts/fuzz.sh --build-only --jobs $(JOBS)

fuzz: fuzz-build
	@FUZZ_DIR=$(FUZZ_DIR) ./scripts/fuzz.sh --no-build --seconds $(FUZZ_SECONDS) --jobs $(JOBS) $(FUZZ_TARGETS)

# Unit and integration tests under ASan+UBSan (g++), in their own build directory. Reports
# of the broker processes the integration tests start go to $(ASAN_DIR)/sanitizer-logs/;
# any report there fails the run.
ASAN_DIR ?= build-asan
SANITIZE_FLAGS = -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
# -Og -g1 (line tables): a sanitized unit compiles 4.5x faster than at -O2 -g (RelWithDebInfo),
# and reports still name file and line (bench/README.md "Build time").
ASAN_OPT_FLAGS ?= -Og -g1
test-asan: deps
	@cmake -S . -B $(ASAN_DIR) -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG="$(ASAN_OPT_FLAGS)" \
		-DCMAKE_CXX_FLAGS="$(SANITIZE_FLAGS)" -DCMAKE_EXE_LINKER_FLAGS="$(SANITIZE_FLAGS)" >/dev/null
	@cmake --build $(ASAN_DIR) -j $(JOBS)
	@rm -rf $(ASAN_DIR)/sanitizer-logs && mkdir -p $(ASAN_DIR)/sanitizer-logs
	@logs=$(abspath $(ASAN_DIR))/sanitizer-logs; \
	ASAN_OPTIONS=log_path=$$logs/asan:detect_leaks=1 \
	UBSAN_OPTIONS=log_path=$$logs/ubsan:print_stacktrace=1:halt_on_error=1 \
	./scripts/run-tests.sh $(ASAN_DIR) $(JOBS); status=$$?; \
	if [ -n "$$(ls -A $$logs)" ]; then \
		echo "sanitizer reports in $$logs:"; ls $$logs; status=1; fi; \
	exit $$status

bench: build
	./bench/run.sh

# Durable conveyor against Redis AOF (T15), recovery time, data-dir size under churn.
# conveyor worker against a Celery 5 worker; installs python3-celery first.
bench-worker: build
	./scripts/install-deps.sh bench
	./bench/worker.sh $(WORKER_ARGS)

bench-durable: build
	./bench/durable.sh $(DURABLE_ARGS)

# conveyor's AMQP front-end next to a private rabbitmq-server: amqp_load, pika,
# Celery; installs rabbitmq-server, python3-pika and python3-celery first.
bench-amqp: build
	./scripts/install-deps.sh bench
	./bench/amqp.sh $(AMQP_ARGS)

CLANG_FORMAT ?= $(shell command -v clang-format-14 || command -v clang-format)
format:
	$(CLANG_FORMAT) -i $$(git ls-files '*.cpp' '*.hpp')

# Every C++ file as .clang-format wants it (CI runs this first): lists the files that differ.
format-check: deps
	@bad=$$(for f in $$(git ls-files '*.cpp' '*.hpp'); do \
		$(CLANG_FORMAT) --dry-run --Werror "$$f" >/dev/null 2>&1 || echo "$$f"; done); \
	if [ -n "$$bad" ]; then echo "format-check: these files differ from .clang-format" \
		"(make format rewrites them):"; echo "$$bad"; exit 1; fi

# clang-tidy (.clang-tidy, warnings as errors) over the C++ sources changed since LINT_BASE
# (default: the last commit), or over LINT_FILES; uses build/compile_commands.json.
CLANG_TIDY ?= $(shell command -v clang-tidy-14 || command -v clang-tidy)
LINT_BASE ?= HEAD~1
lint: configure
	@files="$${LINT_FILES:-$$(git diff --name-only --diff-filter=AM $(LINT_BASE) -- '*.cpp')}"; \
	if [ -z "$$files" ]; then echo "lint: no changed C++ sources since $(LINT_BASE)"; exit 0; fi; \
	echo "lint: $$files"; \
	$(CLANG_TIDY) -p $(BUILD_DIR) --quiet --warnings-as-errors='*' $$files

clean:
	rm -rf $(BUILD_DIR) $(FUZZ_DIR) $(ASAN_DIR)
