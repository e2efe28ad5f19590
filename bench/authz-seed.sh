#!/usr/bin/env bash
# Creates the policy store "bench" with 1,000 policies (one per user, each
# with an ABAC condition) plus a group rule and a forbid guardrail, for the
# decision API load test (authz-check.lua). Needs WARDEN_ADDR, WARDEN_TOKEN,
# WARDEN_CACERT, as printed by `warden server --dev`.
set -euo pipefail
curl_() { curl -sS --fail-with-body --cacert "$WARDEN_CACERT" -H "Authorization: Bearer $WARDEN_TOKEN" "$@"; }
curl_ -X POST "$WARDEN_ADDR/v1/authz/stores" -d '{"name": "bench"}' || true
pol=$(for i in $(seq 1 998); do
  printf 'permit (principal == User::"u%d", action == Action::"read", resource) when { resource.team == "team-%d" && context.amount < %d };\n' "$i" "$((i % 50))" "$((i * 10))"
done
echo 'permit (principal in Group::"admins", action, resource);'
echo 'forbid (principal, action, resource) when { resource has frozen && resource.frozen };')
python3 -c 'import json,sys; print(json.dumps({"policy": sys.stdin.read()}))' <<<"$pol" |
  curl_ -X PUT "$WARDEN_ADDR/v1/authz/stores/bench/policies/rules" --data-binary @- >/dev/null
echo "store bench: $(curl_ "$WARDEN_ADDR/v1/authz/stores/bench/policies")"
