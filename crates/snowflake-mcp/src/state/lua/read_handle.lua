-- Read a handle: KEYS[1] the handle's key; ARGV[1] "take" to delete it in the same step (so
-- of callers racing for it exactly one gets it) or "read". Returns its owner and record (an
-- expired key is already gone).
local found = redis.call('HMGET', KEYS[1], 'owner', 'record')
if found[1] and ARGV[1] == 'take' then
  redis.call('DEL', KEYS[1])
end
return found
