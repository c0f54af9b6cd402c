-- Save a handle's record: KEYS[1] the handle's key; ARGV[1] owner, ARGV[2] record,
-- ARGV[3] expiry (Unix ms). The owner is written once: another owner's save changes nothing.
local owner = redis.call('HGET', KEYS[1], 'owner')
if owner and owner ~= ARGV[1] then
  return 0
end
redis.call('HSET', KEYS[1], 'owner', ARGV[1], 'record', ARGV[2])
redis.call('PEXPIREAT', KEYS[1], ARGV[3])
return 1
