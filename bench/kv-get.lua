-- wrk script: GET one of 1000 secrets written by kv-put.lua.
-- Usage: WARDEN_TOKEN=... wrk -t2 -c32 -d20s --latency -s bench/kv-get.lua https://127.0.0.1:8200
local token = os.getenv("WARDEN_TOKEN")
local n = 0
request = function()
  n = n + 1
  return wrk.format("GET", "/v1/kv/data/bench/k" .. (n % 1000), {
    ["Authorization"] = "Bearer " .. token,
  })
end
