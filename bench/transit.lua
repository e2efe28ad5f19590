-- wrk script: Vault-shaped transit load, the same for Warden and OpenBao.
-- The token is sent as X-Vault-Token (both accept it), from BAO_TOKEN.
--   wrk ... -s bench/transit.lua URL -- batch KEY      100 items of 1 KiB to encrypt/KEY
--   wrk ... -s bench/transit.lua URL -- sign KEY       sign 1 KiB with KEY
--   wrk ... -s bench/transit.lua URL -- encrypt KEY    encrypt 1 KiB with KEY
-- The 1 KiB is fixed random bytes (base64), the same in every request.
local token = os.getenv("BAO_TOKEN") or error("BAO_TOKEN not set")
local input = "jeBGex4TqFWDowD5oOole+3cCO/auPR+bjB9JVCuau4pwpYmmcT5mXB63JgeF7NOpSvEMf5tP09VRT5SCc8mO6WyjZYqNYKumKN+EB3GBeJZYd8D88But4wBcrNyPbNSP/9znoWihPpb1JkWduZryNA8ntq0J9y2kmO+nRbMZcD97lU69qLDx2j7vpg780ui4cmcll5Q7O3c5WPCGp/0cVPA3N0qoBbDPRO0DcOlJI6OJwpqRi6ShEYeg4BVwpGSs1GUR5SQ2TJAjX8vJEJxQcW/QeUCDP8k06rlWH+O5uLA67pWibSmoz45kSFyhsEs2ts9JH1gNwsh43q9pD1qI39x0Jvurn88pgEwVfnwd6Klp6I9nxduCKcADKs98caIV1PpAMJi29cuJWMysODpR8I1W99JGCPxmM5oXP4DKn/FV2SsbOlQ0+ZRMcQpHB1UkgeNLRRteQ72v0gVrj4tpAc/ePIgiztMLzAwkoAeEZNm5UU7UGuA80isKm6jBfmbH1MDYcyYzQnTzaWSe5l9mrFmsvaGRbDKpQiEuqyYPP6zYn1pAdvdRWD5GAZhxlK3lbGksIibFzCbxG+ttSVeamZy5OtIomjhDFVWWJDVIGftLUswteDzlQVjPwyNH17WbzulxKT4UTjKhAksmZCE2m3TrE3nZM+0pdepUM3HtOpFrkrvL8MjcjSqp1TSklacQjjbmQYYNi16AE+L0YSsFRzOE/XehVMrLTO2SeeaQrvkK64xML/Xv+Od9l0xVtUYOl3gsuyIIGx5stSeOwQZ3TYm1Mx2Jz50BWz8JoB1Rv6ioxSzNDjjfc29yg3m1sE9yKeV9xgSqmJibC/4Krl3+sra5OuLbmP7uJv1W4kPir7BkTUo2w4AXFKeLT2yTtc8963J3e8hUS82scCP7MeWUQNAaTQorp/KkjUIBgJPTo9EMQJHGQnpFMU3d3pqM5v9o89U98YaiFFw46nxMf9CuaNiIQInhCZYqaIfioOT7+OJGL0PbrOK1h0vqwHmajJl9RSI8/1XuMWoaEIY40KLyL40NaR6454q//h3souH/TuXdtgFgwb/NrIoru4AIc39Oq6+umlRnUn82k3KL4OVyLc0RWr+XUcnT+e3d8+o1bF3EpsdNxrsTJg9CApOWfiFav8WuyxHuujk6lQbmQ+qWCuTJA96KyKf6vUlIhtJWgMgZJiWBF9rTjAzuEC56BvOkUe14kT4jHVOh3G/GZ4ocUgZtlUSUv/E6nY0qU/gpHmCctyZaErf5aSjzSU52lJgVUdz6vVehzAyapgAZ5K/zJN1eu9MvbP7DTC70Qo0C2W0WTjm90Qwc6BKDbcnh+o7IzpglnixBi+of5G5zSr6bQ=="

function init(args)
  local op, key = args[1] or error("op (batch, sign, encrypt) required"), args[2] or error("key required")
  wrk.method = "POST"
  wrk.headers["X-Vault-Token"] = token
  wrk.headers["Content-Type"] = "application/json"
  if op == "batch" then
    local items = {}
    for i = 1, 100 do
      items[i] = '{"plaintext":"' .. input .. '"}'
    end
    wrk.path = "/v1/transit/encrypt/" .. key
    wrk.body = '{"batch_input":[' .. table.concat(items, ",") .. ']}'
  elseif op == "sign" then
    wrk.path = "/v1/transit/sign/" .. key
    wrk.body = '{"input":"' .. input .. '"}'
  elseif op == "encrypt" then
    wrk.path = "/v1/transit/encrypt/" .. key
    wrk.body = '{"plaintext":"' .. input .. '"}'
  else
    error("unknown op " .. op)
  end
end
