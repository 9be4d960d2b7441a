-- Writes a batch of entries of one library; each entry is checked and written atomically
-- (the whole script is). ARGV[1] is the library's key base "<prefix>:<library>:", then
-- 9 values per entry: key, bytes, content type, generation, group, written at, expires at
-- ("" for none), metadata (a JSON object, "" for none), stale ("1" or ""). Returns 1
-- (written) or 0 (stale) per entry.
local base = ARGV[1]
local floor = tonumber(redis.call('GET', base .. 'floor') or '0')
local out = {}
local added = {}
local i = 2
while i + 8 <= #ARGV do
  local key, b, ct, g, grp, w, x, m, s =
    ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4], ARGV[i + 5], ARGV[i + 6],
    ARGV[i + 7], ARGV[i + 8]
  i = i + 9
  local gen = tonumber(g)
  local ek = base .. 'e:' .. key
  local old = redis.call('HMGET', ek, 'g', 'grp', 'x', 'm', 's')
  if gen < floor or (old[1] and tonumber(old[1]) > gen) then
    out[#out + 1] = 0
  else
    -- Only what changed is written: a rewrite of an entry of the same group is two or
    -- three commands, a new entry five.
    redis.call('HSET', ek, 'b', b, 'ct', ct, 'g', g, 'grp', grp, 'w', w)
    if x ~= '' then
      redis.call('HSET', ek, 'x', x)
      redis.call('PEXPIREAT', ek, x)
    elseif old[3] then
      -- A rewrite clears an expiry mark (the seed's option b).
      redis.call('HDEL', ek, 'x')
      redis.call('PERSIST', ek)
    end
    if m ~= '' then
      redis.call('HSET', ek, 'm', m)
    elseif old[4] then
      redis.call('HDEL', ek, 'm')
    end
    if s == '1' then
      redis.call('HSET', ek, 's', '1')
    elseif old[5] then
      -- A rewrite clears a stale mark.
      redis.call('HDEL', ek, 's')
    end
    if old[2] ~= grp then
      if old[2] then
        redis.call('ZREM', base .. 'g:' .. old[2], key)
      end
      if not added[grp] then
        redis.call('SADD', base .. 'groups', grp)
        added[grp] = true
      end
    end
    if old[1] ~= g or old[2] ~= grp then
      redis.call('ZADD', base .. 'g:' .. grp, gen, key)
    end
    if not old[1] then
      redis.call('ZADD', base .. 'keys', 0, key)
    end
    out[#out + 1] = 1
  end
end
return out
