-- Marks candidate entries stale. ARGV: base "<prefix>:<library>:", now (the cache's clock,
-- ms), "1" to require the group ARGV[4] (else ""), the group, then candidate keys. Entries
-- that are missing or expired by `now` are left alone. Returns how many were marked.
local base, now, check, grp = ARGV[1], tonumber(ARGV[2]), ARGV[3] == '1', ARGV[4]
local n = 0
for i = 5, #ARGV do
  local ek = base .. 'e:' .. ARGV[i]
  local cur = redis.call('HMGET', ek, 'grp', 'x')
  if cur[1] and (not check or cur[1] == grp) and not (cur[2] and tonumber(cur[2]) <= now) then
    redis.call('HSET', ek, 's', '1')
    n = n + 1
  end
end
return n
