-- Reserve one query, and up to the wanted rows and bytes, in every window of one client — all
-- of them or none (a Lua script runs atomically, so concurrent replicas never overrun a quota).
-- KEYS[1..n]: the windows' usage hashes; KEYS[n+1]: the reservation record (settled once).
-- ARGV[1] = n, ARGV[2] = rows wanted, ARGV[3] = bytes wanted, ARGV[4] = reservation TTL (s),
-- then six per window: queries, rows, bytes, milliseconds, microcredits limits (-1: none), and
-- the window's TTL (s).
-- Returns {1, rows granted, bytes granted, ms left or -1} or {0, window index, quota, limit}.
local n = tonumber(ARGV[1])
local rows, bytes = tonumber(ARGV[2]), tonumber(ARGV[3])
local ms_left = -1
for i = 1, n do
  local a = 4 + (i - 1) * 6
  local lq, lr, lb = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3])
  local lms, lmc = tonumber(ARGV[a + 4]), tonumber(ARGV[a + 5])
  local u = redis.call('HMGET', KEYS[i], 'queries', 'rows', 'bytes', 'ms', 'microcredits')
  local uq, ur, ub = tonumber(u[1] or 0), tonumber(u[2] or 0), tonumber(u[3] or 0)
  local ums, umc = tonumber(u[4] or 0), tonumber(u[5] or 0)
  if lq >= 0 and uq + 1 > lq then return {0, i, 'queries', lq} end
  if lms >= 0 then
    local left = lms - ums
    if left <= 0 then return {0, i, 'seconds', lms} end
    if ms_left < 0 or left < ms_left then ms_left = left end
  end
  if lmc >= 0 and umc >= lmc then return {0, i, 'microcredits', lmc} end
  if lr >= 0 then
    if lr - ur <= 0 then return {0, i, 'rows', lr} end
    rows = math.min(rows, lr - ur)
  end
  if lb >= 0 then
    if lb - ub <= 0 then return {0, i, 'bytes', lb} end
    bytes = math.min(bytes, lb - ub)
  end
end
for i = 1, n do
  redis.call('HINCRBY', KEYS[i], 'queries', 1)
  redis.call('HINCRBY', KEYS[i], 'rows', rows)
  redis.call('HINCRBY', KEYS[i], 'bytes', bytes)
  -- A window expires once it is over (with a margin); its first reservation sets that.
  if redis.call('TTL', KEYS[i]) < 0 then
    redis.call('EXPIRE', KEYS[i], ARGV[4 + i * 6])
  end
end
redis.call('SET', KEYS[n + 1], '1', 'EX', ARGV[4])
return {1, rows, bytes, ms_left}
