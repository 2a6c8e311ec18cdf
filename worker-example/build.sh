#!/usr/bin/env bash
# Builds this example Worker into build/ (or the folder given) with the
# pinned tools of ../.ci/wasm-tools, installed on first use. wrangler.toml's
# build command runs it.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
export PATH="$HOME/.cargo/bin:$PATH"
# shellcheck source=../.ci/wasm-tools
. "$here/../.ci/wasm-tools"
worker_build=$(edgepush_cargo_tool worker-build worker-build "$EDGEPUSH_WORKER_BUILD_VERSION")
edgepush_wasm_bindgen
edgepush_npm_tools
# wasm-bindgen needs the symbol tables that stripping removes.
export CARGO_PROFILE_RELEASE_STRIP=false
cd "$here"
"$worker_build" --release --out-dir "${1:-$here/build}"
