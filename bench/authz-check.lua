-- wrk script: decision API checks against the "bench" store (authz-seed.sh).
-- Usage: WARDEN_TOKEN=... wrk -t2 -c32 -d20s --latency -s bench/authz-check.lua https://127.0.0.1:8200
local token = os.getenv("WARDEN_TOKEN")
local n = 0
request = function()
  n = n + 1
  local u = (n % 998) + 1
  local body = string.format('{"principal":"User::\\"u%d\\"","action":"Action::\\"read\\"","resource":"Doc::\\"d%d\\"",' ..
    '"context":{"amount":%d},"entities":[{"uid":{"type":"Doc","id":"d%d"},"attrs":{"team":"team-%d"},"parents":[]}]}',
    u, n, n % 20000, n, u % 50)
  return wrk.format("POST", "/v1/authz/stores/bench/check", {
    ["Authorization"] = "Bearer " .. token,
    ["Content-Type"] = "application/json",
  }, body)
end
