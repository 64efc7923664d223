"""The Lua scripts of ``tracker.stream``: a hit's writes, its popularity, and the ad's read of a profile.

Each touches the keys of one hash tag only (``tracker.partitions``), so each runs on the one Redis
Cluster primary that owns the slot, as on a single server.
"""

# Everything an auction needs about a visitor, in one round trip: the advertisers they engaged
# with most recently (with the time, their recent products there, how many, what they bought and
# when) and their frequency state. Every read is bounded (see the module's docstring). KEYS: the
# visitor's ``adv``, ``advbuy``, ``fq``, today's ``fq:<day>`` and ``hide``; the per-advertiser keys
# named in ``adv`` share their hash tag (one slot).
READ_INTERESTS = """
local prefix = ARGV[1]
local fields_max = tonumber(ARGV[6])
local advs = redis.call('ZREVRANGE', KEYS[1], 0, tonumber(ARGV[3]) - 1, 'WITHSCORES')
local out = {}
for i = 1, #advs, 2 do
  local adv = advs[i]
  local rv = prefix .. ':rv:' .. adv
  out[#out + 1] = {adv, advs[i + 1], redis.call('ZREVRANGE', rv, 0, tonumber(ARGV[2]) - 1),
                   redis.call('ZCARD', rv), redis.call('ZREVRANGE', prefix .. ':bought:' .. adv, 0, tonumber(ARGV[5]) - 1),
                   redis.call('ZSCORE', KEYS[2], adv) or '0'}
end
local function fields(key)
  if redis.call('HLEN', key) > fields_max then return {} end
  return redis.call('HGETALL', key)
end
local hidden = redis.call('ZRANGEBYSCORE', KEYS[5], ARGV[7], '+inf', 'LIMIT', 0, tonumber(ARGV[8]))
return {out, fields(KEYS[3]), fields(KEYS[4]), hidden}
"""


# A hit's writes in its partition's slot (stream entry, counter, profile, frequency) in one call: ARGV holds
# each command as its argument count followed by its arguments. A pipeline of the same ~10
# commands cost the client ~150 µs per hit (packing each command, parsing each reply) against
# ~30 µs for this one call, and the writes apply atomically. KEYS names the keys the call writes
# (so Redis Cluster routes it); the per-advertiser profile keys that ``@PROMOTE`` and ``@CAPINDEX``
# find in an index carry the same hash tag, so every key of the call is in one slot.
# ``replicate_commands`` (a no-op from Redis 7) lets Redis 5 and 6 run XADD's generated id.
# Steps that need a condition are run here rather than as commands (see ``tracker.stream.EventStream``):
# ``@PROMOTE prefix ttl young`` gives a first visit's profile the full TTL once the cookie comes
# back; ``@EXPIREMAX key ttl`` sets a TTL unless the key already lives longer; ``@CAPINDEX index
# keep prefix kind`` keeps the newest advertisers of an index and deletes the per-advertiser keys of
# the others; ``@CAPHASH key max`` starts a frequency hash over.
# Nothing here can fail once the first write passed: a failed call is spooled and replayed whole,
# which would append its stream entry twice.
RUN = """
if redis.replicate_commands then redis.replicate_commands() end
local function promote(prefix, ttl, young)
  for _, index in ipairs({{':adv', ':rv:'}, {':advbuy', ':bought:'}}) do
    local key = prefix .. index[1]
    local left = redis.call('TTL', key)
    if left > 0 and left <= young then
      redis.call('EXPIRE', key, ttl)
      for _, adv in ipairs(redis.call('ZRANGE', key, 0, -1)) do
        redis.call('EXPIRE', prefix .. index[2] .. adv, ttl)
      end
    end
  end
end
local function cap_index(key, keep, prefix, kind)
  local old = redis.call('ZRANGE', key, 0, -keep - 1)
  for _, adv in ipairs(old) do
    redis.call('DEL', prefix .. kind .. adv)
  end
  if #old > 0 then redis.call('ZREMRANGEBYRANK', key, 0, -keep - 1) end
end
local i, n = 1, #ARGV
while i <= n do
  local c = tonumber(ARGV[i])
  local name = ARGV[i + 1]
  if name == '@PROMOTE' then
    promote(ARGV[i + 2], tonumber(ARGV[i + 3]), tonumber(ARGV[i + 4]))
  elseif name == '@CAPINDEX' then
    cap_index(ARGV[i + 2], tonumber(ARGV[i + 3]), ARGV[i + 4], ARGV[i + 5])
  elseif name == '@EXPIREMAX' then
    if redis.call('TTL', ARGV[i + 2]) < tonumber(ARGV[i + 3]) then redis.call('EXPIRE', ARGV[i + 2], ARGV[i + 3]) end
  elseif name == '@CAPHASH' then
    if redis.call('HLEN', ARGV[i + 2]) > tonumber(ARGV[i + 3]) then redis.call('DEL', ARGV[i + 2]) end
  else
    redis.call(unpack(ARGV, i + 1, i + c))
  end
  i = i + c + 1
end
return n
"""

# A hit's popularity, in the advertiser's slot: KEYS the day's key; ARGV weight, TTL, skus.
POPULAR = """
for i = 3, #ARGV do redis.call('ZINCRBY', KEYS[1], ARGV[1], ARGV[i]) end
redis.call('EXPIRE', KEYS[1], ARGV[2])
return #ARGV - 2
"""
