#!/usr/bin/env bash
# The whole test suite, from a fresh clone on a fresh machine.
#
#   ./scripts/test.sh            format check, clippy, every unit and CLI integration test
#   FAST=1 ./scripts/test.sh     tests only (skip fmt and clippy)
#
# Builds go to a shared target dir outside the clone (default
# ~/.cache/sluice-target) so CI and later runs reuse them. Debug profile only:
# a release build takes ~25 minutes on 2 cores and is never part of the tests.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/sluice-target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
export NO_COLOR=1

step() { printf '\n== %s\n' "$*"; }

step "toolchain: $(rustc --version)"
if ! cargo nextest --version >/dev/null 2>&1; then
  step "cargo-nextest missing: installing it (once)"
  cargo install cargo-nextest --locked
fi

# The tests of this release need no server: files in, Delta lake out, SQLite
# state. (Database and Singer tests, when they land, start their services and
# Python venvs here, before the test run.)

if [ -z "${FAST:-}" ]; then
  step "cargo fmt --check"
  cargo fmt --all -- --check
  step "cargo clippy -D warnings"
  cargo clippy --workspace --all-targets --locked -- -D warnings
fi

step "tests (cargo nextest)"
cargo nextest run --workspace --locked --no-fail-fast
