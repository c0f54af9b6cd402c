-- Save a session record: fields given replace the stored ones, the owner is written once, the
-- last-seen time only moves forward, and the record's expiry starts again.
-- KEYS[1]: the session hash. ARGV[1..5]: client_id, client_name, client_version, context,
-- init_params, each '' when not given or '=' followed by the value; ARGV[6] created,
-- ARGV[7] last_seen (Unix s), ARGV[8] TTL (s).
local fields = {'client_id', 'client_name', 'client_version', 'context', 'init_params'}
for i, field in ipairs(fields) do
  local v = ARGV[i]
  if v ~= '' then
    if field == 'client_id' then
      redis.call('HSETNX', KEYS[1], field, string.sub(v, 2))
    else
      redis.call('HSET', KEYS[1], field, string.sub(v, 2))
    end
  end
end
redis.call('HSETNX', KEYS[1], 'created', ARGV[6])
local seen = tonumber(redis.call('HGET', KEYS[1], 'last_seen') or 0)
if tonumber(ARGV[7]) > seen then redis.call('HSET', KEYS[1], 'last_seen', ARGV[7]) end
redis.call('EXPIRE', KEYS[1], ARGV[8])
return 1
