-- Concurrency leases: a sorted set of holders scored by their expiry on Redis's clock. Expired
-- holders (a replica that died) are dropped first; a holder renews by acquiring again.
-- KEYS[1]: the scope's set. ARGV[1]: holder; ARGV[2]: cap; ARGV[3]: TTL (ms);
-- ARGV[4]: 'acquire' (take a place if under the cap, or renew one held) or 'renew' (only renew).
-- Returns {1 held / 0 not, holders now}.
if redis.replicate_commands then pcall(redis.replicate_commands) end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local held = redis.call('ZSCORE', KEYS[1], ARGV[1])
local count = redis.call('ZCARD', KEYS[1])
if not held and (ARGV[4] == 'renew' or count >= tonumber(ARGV[2])) then
  return {0, count}
end
redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
redis.call('PEXPIRE', KEYS[1], ttl * 2)
if not held then count = count + 1 end
return {1, count}
