#!/usr/bin/env bash
# The quick start: a real validate, plan, apply and no-op plan against the sample deployment.
# State and the managed copy of the deployment stay in ignored directories (.live, .tldw-ops).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here/../.."
echo "building tldw-ops (the first build takes a few minutes)..."
cargo build --locked --bin tldw-ops
tool="$PWD/target/debug/tldw-ops"
cd "$here"
if [ ! -d .live ]; then
  cp -R deployment .live
  chmod 600 .live/tldw_Server_API/Config_Files/.env
  echo "copied the sample deployment to examples/quickstart/.live"
fi
# Bold command lines only on a terminal, and never with NO_COLOR set.
if [ -t 1 ] && [ -z "${NO_COLOR:-}" ]; then bold=$'\033[1m' plain=$'\033[0m'; else bold='' plain=''; fi
step() { printf '\n%s$ tldw-ops %s%s\n' "$bold" "$*" "$plain"; }
step validate
"$tool" validate
step plan
"$tool" plan
step apply --auto-approve
"$tool" apply --auto-approve
step plan --detailed-exitcode
"$tool" plan --detailed-exitcode
step history
"$tool" history
echo
echo "Done. Edit examples/quickstart/tldw-ops.yaml and run this script again to see a plan;"
echo "remove examples/quickstart/.live and .tldw-ops to start over."
