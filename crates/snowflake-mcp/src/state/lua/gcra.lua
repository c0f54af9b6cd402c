-- A rate limit as GCRA (the generic cell rate algorithm of redis-cell and `governor`) on
-- Redis's own clock, so every replica sees one limit whatever its own clock says.
-- KEYS[1]: the client's theoretical arrival time (ms). ARGV[1]: ms between calls at the rate;
-- ARGV[2]: burst; ARGV[3]: 'take', 'give' (undo one take) or 'peek' (calls available now).
-- Returns {1, 0} taken, {0, ms to wait} refused, {calls available, 0} for a peek.
if redis.replicate_commands then pcall(redis.replicate_commands) end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local interval, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local tat = math.max(tonumber(redis.call('GET', KEYS[1]) or 0), now)
local mode = ARGV[3]
if mode == 'peek' then
  return {math.floor((now + burst * interval - tat) / interval), 0}
end
local new
if mode == 'give' then
  new = math.max(tat - interval, now)
else
  new = tat + interval
  local wait = new - burst * interval - now
  if wait > 0 then return {0, math.ceil(wait)} end
end
redis.call('SET', KEYS[1], string.format('%.0f', new), 'PX', math.ceil(new - now) + 1000)
return {1, 0}
