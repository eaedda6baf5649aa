#!/usr/bin/env bash
# The whole test suite: the emulator tier and the test bed tier (a real control plane built from
# Go modules; see scripts/testbed.sh). Installs what it needs itself; safe on a fresh machine.
# The emulator tier alone: cargo test --workspace (the test bed tier is the `testbed` feature).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v kubectl >/dev/null; then
  # The emulator tier's independent client (the test bed tier uses the kubectl it builds).
  apt-get update && apt-get install -y kubernetes-client
fi
if ! command -v redis-server >/dev/null || ! command -v mariadbd >/dev/null; then
  # Real servers the verify probes meet: Redis 7 (TLS and AUTH) and MariaDB (the MySQL
  # protocol, with TLS). The tests start their own; the packages' services stay off.
  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y redis-server mariadb-server
fi
if ! command -v buildah >/dev/null || ! command -v umoci >/dev/null || ! command -v skopeo >/dev/null; then
  # wbstack's image is built with buildah and checked with umoci and skopeo (tests/image.rs).
  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y buildah umoci skopeo
fi
if ! command -v chromium >/dev/null; then
  # Headless Chromium checks the HTML report (tests/report.rs).
  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium
fi
# The test bed's binaries (a cold build takes about 13 minutes on 2 cores; cached after that),
# built before the tests so that the build is a step of its own.
start=$SECONDS
./scripts/testbed.sh build
echo "test bed build: $((SECONDS - start)) s" >&2
cargo test --workspace --locked --features wbstack/testbed --lib --bins --tests
cargo test --workspace --locked --features wbstack/testbed --doc
# The benches and examples are built with the tests' features, so nothing is built twice.
# A few kill trials of the production plan (the bench binary; `-- --trials 100` for the full run).
cargo test --locked --features testbed --bench kill -- --trials 4
# Ten environments up and down at once on one cluster and one moto (`-- --envs 1,10,50` for the
# full run): none may fail, disturb another or leave anything.
cargo test --locked --features testbed --bench scale -- --envs 10
# The examples build and run.
cargo run --locked --quiet --features testbed --example custom_step
cargo run --locked --quiet --features testbed --example render_plan -- plans/poc.yaml >/dev/null
