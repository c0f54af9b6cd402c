-- Settle a reservation, once: give back the query (if it never ran) and the rows and bytes
-- granted but not used, and charge the session-time and credits spent in place of those
-- reserved (a signed difference). A settlement whose reservation record is gone (settled
-- already, by a retry or another path) changes nothing, and a window that has expired is not
-- brought back.
-- KEYS[1..n]: the windows' usage hashes; KEYS[n+1]: the reservation record.
-- ARGV: n, query refund (0/1), unused rows, unused bytes, ms spent minus reserved, microcredits
-- spent minus reserved.
-- Returns 1 when applied, 0 when already settled.
local n = tonumber(ARGV[1])
if redis.call('DEL', KEYS[n + 1]) == 0 then return 0 end
local back = {queries = tonumber(ARGV[2]), rows = tonumber(ARGV[3]), bytes = tonumber(ARGV[4])}
local charge = {ms = tonumber(ARGV[5]), microcredits = tonumber(ARGV[6])}
for i = 1, n do
  if redis.call('EXISTS', KEYS[i]) == 1 then
    for field, by in pairs(back) do
      if by > 0 then
        local have = tonumber(redis.call('HGET', KEYS[i], field) or 0)
        redis.call('HINCRBY', KEYS[i], field, -math.min(by, have))
      end
    end
    for field, by in pairs(charge) do
      if by > 0 then
        redis.call('HINCRBY', KEYS[i], field, by)
      elseif by < 0 then
        local have = tonumber(redis.call('HGET', KEYS[i], field) or 0)
        redis.call('HINCRBY', KEYS[i], field, -math.min(-by, have))
      end
    end
  end
end
return 1
