#!/usr/bin/env bash
# Prepares a --dev server for the load tests: a "bench" policy in the warden
# store, a non-root token for User::"bench" in Group::"bench" (so every request
# is authenticated and authorized by policy, and no root-token warning is
# logged per request), and the "bench" decision store with 1,000 policies.
# Needs WARDEN_ADDR, WARDEN_TOKEN (root), WARDEN_CACERT as printed by
# `warden server --dev`. Prints the bench token. Set WARDEN_BIN to a built
# warden binary to use it instead of `go run ./cmd/warden` (run from the repo root).
set -euo pipefail
w() { if [ -n "${WARDEN_BIN:-}" ]; then "$WARDEN_BIN" "$@"; else go run ./cmd/warden "$@"; fi; }
printf '%s\n' 'permit (principal in Group::"bench", action in [Action::"kv.read", Action::"kv.write", Action::"authz.check", Action::"transit.encrypt", Action::"transit.sign"], resource);' |
  w policy write bench - >/dev/null
bash "$(dirname "$0")/authz-seed.sh" >/dev/null
w token create --user bench --group bench --ttl 2h --format json | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])'
