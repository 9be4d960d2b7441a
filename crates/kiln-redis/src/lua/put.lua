-- Writes a batch of entries of one library; each entry is checked and written atomically
-- (the whole script is). ARGV[1] is the library's key base "<prefix>:<library>:", then
-- 7 values per entry: key, bytes, content type, generation, group, written at, expires at
-- ("" for none). Returns 1 (written) or 0 (stale) per entry.
local base = ARGV[1]
local floor = tonumber(redis.call('GET', base .. 'floor') or '0')
local out = {}
local i = 2
while i + 6 <= #ARGV do
  local key, b, ct, g, grp, w, x =
    ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4], ARGV[i + 5], ARGV[i + 6]
  i = i + 7
  local gen = tonumber(g)
  local ek = base .. 'e:' .. key
  local old = redis.call('HMGET', ek, 'g', 'grp')
  if gen < floor or (old[1] and tonumber(old[1]) > gen) then
    out[#out + 1] = 0
  else
    redis.call('HSET', ek, 'b', b, 'ct', ct, 'g', g, 'grp', grp, 'w', w)
    if x == '' then
      -- A rewrite clears an expiry mark (the seed's option b).
      redis.call('HDEL', ek, 'x')
      redis.call('PERSIST', ek)
    else
      redis.call('HSET', ek, 'x', x)
      redis.call('PEXPIREAT', ek, x)
    end
    if old[2] and old[2] ~= grp then
      redis.call('ZREM', base .. 'g:' .. old[2], key)
    end
    redis.call('ZADD', base .. 'g:' .. grp, gen, key)
    redis.call('SADD', base .. 'groups', grp)
    redis.call('ZADD', base .. 'keys', 0, key)
    out[#out + 1] = 1
  end
end
return out
