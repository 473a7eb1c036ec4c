# ScanPay: the two commands a newcomer needs are `make run` and `make test`.
# Everything installs what it lacks first (scripts/tools.sh) and skips what is present.

SHELL := /bin/bash
.DEFAULT_GOAL := help
.PHONY: help tools run build watch test lint unit e2e release dist migrate bench soak sandbox cluster clean-test-dbs

# npm's binaryen (wasm-opt) must come before anything else called wasm-opt.
export PATH := $(CURDIR)/end2end/node_modules/.bin:$(HOME)/.cargo/bin:$(PATH)

# The server is built with `--cfg erase_components` and the bundle name baked in at compile
# time (as cargo-leptos would); cargo test and clippy use the same values so they reuse its
# artefacts. scripts/site.sh builds the browser bundle the same way.
OUTPUT_NAME := $(shell sed -n 's/^output-name *= *"\(.*\)"/\1/p' Cargo.toml)
CARGO_ENV := LEPTOS_OUTPUT_NAME=$(OUTPUT_NAME) LEPTOS_SITE_ROOT=target/site LEPTOS_SITE_PKG_DIR=pkg RUSTFLAGS="--cfg erase_components"
# Release builds erase component types too: the same code the tests run, and a smaller WASM
# (925,233 → 862,176 B raw; see docs/benchmarks.md). bench shares the release artefacts.
RELEASE_ENV := RUSTFLAGS="--cfg erase_components"

# LINT=1 (make test): the workspace's crates are compiled by clippy-driver, lints as errors.
TEST_TARGETS := --workspace --lib --bins --tests
ifeq ($(LINT),1)
CLIPPY_DRIVER := $(shell command -v clippy-driver)
ifeq ($(CLIPPY_DRIVER),)
$(error clippy-driver is missing: rustup component add clippy)
endif
export RUSTC_WORKSPACE_WRAPPER := $(CLIPPY_DRIVER)
export CLIPPY_ARGS := -D__CLIPPY_HACKERY__warnings
TEST_TARGETS += --examples
endif

help:
	@echo "make run     set up and run ScanPay on http://127.0.0.1:3000 (embedded SQLite)"
	@echo "make test    set up and run every check and test (fmt, clippy, unit, SQLite, PostgreSQL, end2end)"
	@echo "make release build the optimised server and WASM bundle, and print the bundle size"
	@echo "make dist    the release as target/dist/scanpay-<version>-<commit>-<arch>-linux.tar.gz (program, site, sample config, systemd unit)"
	@echo "make migrate apply database migrations and exit"
	@echo "make sandbox run only the sandbox gateways on 127.0.0.1:3100"
	@echo "make bench   provider crypto, prepay round trips, checkout render, callbacks/s, board reads, API + rate limit, selection simulation (release)"
	@echo "make soak    load and faults (kill -9, cut connections, junk) on SQLite and PostgreSQL; about 5 min"
	@echo "make cluster three nodes on 127.0.0.1:3001-3003 sharing the local PostgreSQL, and the sandbox on :3100"

tools:
	@scripts/tools.sh

build: tools
	scripts/site.sh
	$(CARGO_ENV) cargo build -p server --bin scanpay

run: build
	./target/debug/scanpay serve

# Live reload while editing the UI; needs cargo-leptos (cargo install cargo-leptos --version 0.3.10).
watch: tools
	cargo leptos watch

migrate: build
	./target/debug/scanpay migrate

sandbox: build
	./target/debug/scanpay sandbox --listen 127.0.0.1:3100

# Not part of `make test`: the load and fault suite (server/examples/soak.rs) on both engines,
# SOAK_SECONDS of load each, then the time to converge; it appends its table to
# docs/benchmarks.md and fails if anything was lost, paid twice or refunded twice.
SOAK_SECONDS ?= 100
soak: build
	$(CARGO_ENV) cargo run -q -p server --example soak -- --engine sqlite --seconds $(SOAK_SECONDS)
	$(CARGO_ENV) cargo run -q -p server --example soak -- --engine postgres --seconds $(SOAK_SECONDS)

# Three nodes on loopback against the local PostgreSQL and the standalone sandbox (Ctrl-C stops).
cluster: build
	scripts/cluster.sh

# A benchmark, not a test: figures go to docs/benchmarks.md with the machine stated.
bench: tools
	$(RELEASE_ENV) LEPTOS_OUTPUT_NAME=$(OUTPUT_NAME) cargo run --release -p server --example bench_providers
	$(RELEASE_ENV) LEPTOS_OUTPUT_NAME=$(OUTPUT_NAME) cargo run --release -p server --example bench_checkout
	$(RELEASE_ENV) LEPTOS_OUTPUT_NAME=$(OUTPUT_NAME) cargo run --release -p server --example bench_callbacks
	$(RELEASE_ENV) LEPTOS_OUTPUT_NAME=$(OUTPUT_NAME) cargo run --release -p server --example bench_board
	$(RELEASE_ENV) LEPTOS_OUTPUT_NAME=$(OUTPUT_NAME) cargo run --release -p server --example bench_cluster

# make test lints while it builds (LINT=1): the workspace's own crates are compiled by
# clippy-driver with -D warnings (RUSTC_WORKSPACE_WRAPPER, which is all `cargo clippy` does),
# so the dependencies are compiled once, not a second time in check mode for each clippy
# pass (the two passes took 8 min 38 s of a cold run before; the saving on a whole cold run
# is not yet measured on one machine: docs/benchmarks.md). It covers what `make lint` covers: the server's lib, bins,
# tests and examples, and the app for the server and for the browser (scripts/site.sh).
test: clean-test-dbs
	@scripts/tools.sh --test
	cargo fmt --all -- --check
	scripts/deny.sh
	@$(MAKE) --no-print-directory build LINT=1
	@$(MAKE) --no-print-directory unit LINT=1
	scripts/schemathesis.sh
	@$(MAKE) --no-print-directory e2e

# The same checks on their own: formatting, clippy on every target (native and WASM),
# cargo deny (advisories from supply-chain/advisory-db, licences, bans, sources; offline) and
# Schemathesis against the merchant API's served OpenAPI document (scripts/schemathesis.sh).
lint:
	cargo fmt --all -- --check
	$(CARGO_ENV) cargo clippy --workspace --all-targets -- -D warnings
	$(CARGO_ENV) cargo clippy -p app --lib --no-default-features --features hydrate --target wasm32-unknown-unknown -- -D warnings
	scripts/deny.sh
	@$(MAKE) --no-print-directory build
	scripts/schemathesis.sh

# Unit and integration tests, on SQLite and on the local PostgreSQL (fresh databases per test),
# each test in a process of its own with a time limit (.config/nextest.toml); plain cargo test
# where cargo-nextest is missing. The examples (benchmarks, soak) are built only under
# LINT=1, so that make test lints them; a plain `make unit` skips their links.
unit:
	@if cargo nextest --version >/dev/null 2>&1; then \
	  echo "$(CARGO_ENV) cargo nextest run $(TEST_TARGETS)"; \
	  $(CARGO_ENV) cargo nextest run $(TEST_TARGETS); \
	else \
	  echo "$(CARGO_ENV) cargo test $(TEST_TARGETS)"; \
	  $(CARGO_ENV) cargo test $(TEST_TARGETS); \
	fi

e2e:
	cd end2end && npx playwright test

release: tools
	scripts/site.sh --release
	$(RELEASE_ENV) LEPTOS_OUTPUT_NAME=$(OUTPUT_NAME) LEPTOS_SITE_ROOT=target/site LEPTOS_SITE_PKG_DIR=pkg cargo build --release -p server --bin scanpay
	@scripts/bundle-size.sh

# The release archive (scripts/dist.sh); a test in server/tests/cli.rs packs the debug build
# the same way, unpacks it into an empty folder and starts it.
dist: release
	scripts/dist.sh

# Test databases are dropped by each test; this removes any left by a killed run.
clean-test-dbs:
	@if command -v psql >/dev/null 2>&1 && psql -h 127.0.0.1 -U postgres -d postgres -Atqc 'select 1' >/dev/null 2>&1; then \
	  for db in $$(psql -h 127.0.0.1 -U postgres -d postgres -Atqc "select datname from pg_database where datname like 'scanpay_test_%'"); do \
	    psql -h 127.0.0.1 -U postgres -d postgres -qc "drop database if exists $$db with (force)" >/dev/null; \
	  done; \
	fi
