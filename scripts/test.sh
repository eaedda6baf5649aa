#!/usr/bin/env bash
# The whole test suite. Installs what it needs itself; safe to run on a fresh machine.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v kubectl >/dev/null; then
  apt-get update && apt-get install -y kubernetes-client
fi
cargo test --workspace --locked --lib --bins --tests
cargo test --workspace --locked --doc
# The examples build and run.
cargo run --locked --quiet --example custom_step
cargo run --locked --quiet --example render_plan -- plans/poc.yaml >/dev/null
