#!/usr/bin/env bash
# Runs every check and test of Switchyard: formatting, lints, unit, property and integration
# tests (which start the real binary), the flights example, and a short fuzz run.
# Needs only the Rust toolchain; anything else a test needs is installed by the test itself.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "format check"
cargo fmt --all -- --check

step "clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "build the binaries the integration tests start"
cargo build --locked -p switchyard-cli -p switchyard-example-flights -p switchyard-example-video

step "unit, property and integration tests"
cargo test --workspace --locked

step "short fuzz run of the protocol decoders"
scripts/fuzz.sh 20
