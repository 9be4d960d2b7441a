-- Deletes one entry and its index members. ARGV: base "<prefix>:<library>:", key, now (the
-- cache's clock, ms). Returns 1 if a live entry was deleted, else 0.
local base, key, now = ARGV[1], ARGV[2], tonumber(ARGV[3])
local ek = base .. 'e:' .. key
local cur = redis.call('HMGET', ek, 'grp', 'x')
redis.call('ZREM', base .. 'keys', key)
if not cur[1] then
  return 0
end
redis.call('DEL', ek)
local gk = base .. 'g:' .. cur[1]
redis.call('ZREM', gk, key)
if redis.call('EXISTS', gk) == 0 then
  redis.call('SREM', base .. 'groups', cur[1])
end
if cur[2] and tonumber(cur[2]) <= now then
  return 0
end
return 1
