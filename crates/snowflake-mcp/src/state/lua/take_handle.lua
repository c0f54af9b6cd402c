-- Take a handle: KEYS[1] the handle's key. Returns its owner and record and deletes it, in one
-- step, so of callers racing for it exactly one gets it (an expired key is already gone).
local taken = redis.call('HMGET', KEYS[1], 'owner', 'record')
if taken[1] then
  redis.call('DEL', KEYS[1])
end
return taken
