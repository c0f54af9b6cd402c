-- Reserve one query, and up to the wanted rows and bytes, in every window of one client — all
-- of them or none (a Lua script runs atomically, so concurrent replicas never overrun a quota).
-- When a window limits session-time or credits, session-time is reserved too (with its credits
-- at the warehouse's rate): at most half of what is left unreserved in the tightest of them, in
-- whole seconds, at least one second, never more than the statement's timeout — the same as
-- `cost_grant` in store.rs — so statements started together split what is left.
-- KEYS[1..n]: the windows' usage hashes; KEYS[n+1]: the reservation record (settled once).
-- ARGV[1] = n, ARGV[2] = rows wanted, ARGV[3] = bytes wanted, ARGV[4] = reservation TTL (s),
-- ARGV[5] = the statement's timeout (ms), ARGV[6] = the warehouse's microcredits per hour (0:
-- unknown), then six per window: queries, rows, bytes, milliseconds, microcredits limits (-1:
-- none), and the window's TTL (s).
-- Returns {1, rows granted, bytes granted, ms reserved or -1, microcredits reserved} or
-- {0, window index, quota, limit}.
local n = tonumber(ARGV[1])
local rows, bytes = tonumber(ARGV[2]), tonumber(ARGV[3])
local want_ms, rate = tonumber(ARGV[5]), tonumber(ARGV[6])
local free = -1
for i = 1, n do
  local a = 6 + (i - 1) * 6
  local lq, lr, lb = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3])
  local lms, lmc = tonumber(ARGV[a + 4]), tonumber(ARGV[a + 5])
  local u = redis.call('HMGET', KEYS[i], 'queries', 'rows', 'bytes', 'ms', 'microcredits')
  local uq, ur, ub = tonumber(u[1] or 0), tonumber(u[2] or 0), tonumber(u[3] or 0)
  local ums, umc = tonumber(u[4] or 0), tonumber(u[5] or 0)
  if lq >= 0 and uq + 1 > lq then return {0, i, 'queries', lq} end
  if lms >= 0 then
    local left = lms - ums
    if left <= 0 then return {0, i, 'seconds', lms} end
    if free < 0 or left < free then free = left end
  end
  if lmc >= 0 then
    if umc >= lmc then return {0, i, 'microcredits', lmc} end
    if rate > 0 then
      local left = math.floor((lmc - umc) * 3600000 / rate)
      if free < 0 or left < free then free = left end
    end
  end
  if lr >= 0 then
    if lr - ur <= 0 then return {0, i, 'rows', lr} end
    rows = math.min(rows, lr - ur)
  end
  if lb >= 0 then
    if lb - ub <= 0 then return {0, i, 'bytes', lb} end
    bytes = math.min(bytes, lb - ub)
  end
end
local ms, mc = -1, 0
if free >= 0 then
  ms = math.max(math.min(want_ms, math.floor(free / 2000) * 1000), 1000)
  mc = math.ceil(ms * rate / 3600000)
end
for i = 1, n do
  redis.call('HINCRBY', KEYS[i], 'queries', 1)
  redis.call('HINCRBY', KEYS[i], 'rows', rows)
  redis.call('HINCRBY', KEYS[i], 'bytes', bytes)
  if ms > 0 then redis.call('HINCRBY', KEYS[i], 'ms', ms) end
  if mc > 0 then redis.call('HINCRBY', KEYS[i], 'microcredits', mc) end
  -- A window expires once it is over (with a margin); its first reservation sets that.
  if redis.call('TTL', KEYS[i]) < 0 then
    redis.call('EXPIRE', KEYS[i], ARGV[6 + i * 6])
  end
end
redis.call('SET', KEYS[n + 1], '1', 'EX', ARGV[4])
return {1, rows, bytes, ms, mc}
