-- Raises a library's floor to ARGV[1] (never lowers it). KEYS[1] is the floor key.
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) > cur then
  redis.call('SET', KEYS[1], ARGV[1])
end
return 0
