-- wrk script: PUT a ~1 KiB secret to one of 1000 paths per request.
-- Usage: WARDEN_TOKEN=... wrk -t2 -c32 -d20s --latency -s bench/kv-put.lua https://127.0.0.1:8200
local token = os.getenv("WARDEN_TOKEN")
local value = string.rep("x", 1000)
local n = 0
request = function()
  n = n + 1
  local body = '{"data":{"v":"' .. value .. '"}}'
  return wrk.format("PUT", "/v1/kv/data/bench/k" .. (n % 1000), {
    ["Authorization"] = "Bearer " .. token,
    ["Content-Type"] = "application/json",
  }, body)
end
