-- Marks (ARGV[2] = "mark"), unmarks (ARGV[2] = "unmark": clears marks set at exactly the
-- expire-at) or sweeps (ARGV[2] = "sweep") candidate entries of one producer group. ARGV: base "<prefix>:<library>:", op, group, below generation, expire-at (mark),
-- now (the cache's clock, ms), then candidate keys from the group's index. Each candidate is
-- re-checked against its entry, so a stale index member is cleaned up instead of acted on.
-- An entry expired by `now` (which Redis's own expiry may not have removed yet) is gone for
-- readers: a sweep deletes it and a mark leaves it, neither counts it. Returns how many
-- entries were marked, unmarked or deleted.
local base, op, grp, below, at = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5]
local now = tonumber(ARGV[6])
local gk = base .. 'g:' .. grp
local n = 0
for i = 7, #ARGV do
  local key = ARGV[i]
  local ek = base .. 'e:' .. key
  local cur = redis.call('HMGET', ek, 'g', 'grp', 'x')
  if not cur[1] then
    -- The entry expired natively: drop its index members.
    redis.call('ZREM', gk, key)
    redis.call('ZREM', base .. 'keys', key)
  elseif cur[2] ~= grp then
    -- The entry moved to another group.
    redis.call('ZREM', gk, key)
  elseif tonumber(cur[1]) < below then
    local expired = cur[3] and tonumber(cur[3]) <= now
    if op == 'sweep' then
      redis.call('DEL', ek)
      redis.call('ZREM', gk, key)
      redis.call('ZREM', base .. 'keys', key)
      if not expired then
        n = n + 1
      end
    elseif op == 'unmark' then
      if not expired and cur[3] == at then
        redis.call('HDEL', ek, 'x')
        redis.call('PERSIST', ek)
        n = n + 1
      end
    elseif not expired then
      redis.call('HSET', ek, 'x', at)
      redis.call('PEXPIREAT', ek, at)
      n = n + 1
    end
  end
end
if redis.call('EXISTS', gk) == 0 then
  redis.call('SREM', base .. 'groups', grp)
end
return n
