#!/usr/bin/env bash
# The whole test suite. Installs what it needs itself; safe to run on a fresh machine.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --workspace --locked --lib --bins --tests
cargo test --workspace --locked --doc
