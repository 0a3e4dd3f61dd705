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

# Servers the database tests talk to (real ones, never mocks).
step "services"
./scripts/services.sh

# Python tools the tests run (an S3-compatible server for the S3 lake tests,
# singer-sdk for test taps), in a venv outside the clone, reinstalled only when
# the requirements change.
export SLUICE_TEST_VENV="${SLUICE_TEST_VENV:-$HOME/.cache/sluice-test-venv}"
req=scripts/test-requirements.txt
if ! cmp -s "$req" "$SLUICE_TEST_VENV/.requirements" 2>/dev/null; then
  step "python test tools -> $SLUICE_TEST_VENV"
  python3 -m venv "$SLUICE_TEST_VENV"
  "$SLUICE_TEST_VENV/bin/pip" install --quiet --disable-pip-version-check -r "$req"
  cp "$req" "$SLUICE_TEST_VENV/.requirements"
fi

# Real Singer taps and targets from PyPI (scripts/test-plugins.txt). Their
# pins conflict (target-jsonl wants jsonschema 2.6, the SDK taps want 4.x), so
# each gets its own venv, $SLUICE_TEST_VENV/plugins/<executable>/, and a link
# $SLUICE_TEST_VENV/bin/<executable> that the tests run (support.rs
# `singer_bin`). A venv is rebuilt only when its line changes.
while read -r exe spec; do
  case "$exe" in ''|'#'*) continue ;; esac
  venv="$SLUICE_TEST_VENV/plugins/$exe"
  if [ "$(cat "$venv/.requirement" 2>/dev/null)" != "$spec" ] || [ ! -x "$venv/bin/$exe" ]; then
    step "singer plugin $exe ($spec) -> $venv"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "$spec"
    printf '%s' "$spec" > "$venv/.requirement"
  fi
  ln -sfn "$venv/bin/$exe" "$SLUICE_TEST_VENV/bin/$exe"
done < scripts/test-plugins.txt

if [ -z "${FAST:-}" ]; then
  step "cargo fmt --check"
  cargo fmt --all -- --check
  step "cargo clippy -D warnings"
  cargo clippy --workspace --all-targets --locked -- -D warnings
fi

step "tests (cargo nextest)"
cargo nextest run --workspace --locked --no-fail-fast
