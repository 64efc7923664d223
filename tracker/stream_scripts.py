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
# the others; ``@CAPHASH key max`` starts a frequency hash over. ``@CAPINDEX`` and ``@TRIM key keep``
# (the newest ``keep`` members of a sorted set) follow a ``ZADD`` and run only if it added a member:
# a set that did not grow is within its cap already, so a hit to a store the visitor has seen costs
# one command less, and to a product they have seen there two less (a profile size lowered in the
# settings applies to a set when it next grows).
# ARGV may hold several hits' commands one after the other (a batch, ``tracker.linger``): each runs
# exactly as it would alone, in order, within one atomic call.
# ``@ONCE key id keep ttl`` comes first: the call's id is added to its sender's set of recently applied
# calls, or, if it is there already, the call returns -1 and writes nothing. A call whose answer was
# lost (the connection dropped, a primary killed after it ran and replicated) is sent again with the
# same id, by redis-py's retry or from the spool, and applies once; the set is replicated with the
# writes, so a promoted replica knows what it holds.
# Nothing here may fail once the first write passed: a failed call is spooled and replayed whole,
# which would append its stream entries twice. On a Redis Cluster one failure can come mid-script: a
# key refused because its slot is being moved to another primary (a key missing from a MIGRATING slot
# belongs to the target: "Script attempted to access a non local key"). KEYS names every key the
# commands write, so Redis refuses such a call before it starts (TRYAGAIN or ASK); ``RUN_CLUSTER``
# also reads the keys that ``@PROMOTE`` and ``@CAPINDEX`` will find in an index, in a probe before
# any write, so a refusal of one of them leaves nothing written either. The probe reads what the steps
# will touch: an index's members while its TTL is in the young window (within a call a TTL only grows,
# or the index is new and its members written by this call), and as many of an index's oldest members
# as the call's ``@CAPINDEX`` steps on it may evict (each follows one ZADD). A single server moves no
# slot, so ``RUN`` skips the probe (about 2 µs of Redis CPU per hit).
_RUN_HEAD = """
if redis.replicate_commands then redis.replicate_commands() end
local INDEXES = {{':adv', ':rv:'}, {':advbuy', ':bought:'}}
"""

_RUN_PROBE = """
local function probe(argv)
  local capped = {}
  local i, n = 1, #argv
  while i <= n do
    local name = argv[i + 1]
    if name == '@PROMOTE' then
      local prefix, young = argv[i + 2], tonumber(argv[i + 4])
      for _, index in ipairs(INDEXES) do
        local left = redis.call('TTL', prefix .. index[1])
        if left > 0 and left <= young then
          for _, adv in ipairs(redis.call('ZRANGE', prefix .. index[1], 0, -1)) do
            redis.call('EXISTS', prefix .. index[2] .. adv)
          end
        end
      end
    elseif name == '@CAPINDEX' then
      local step = capped[argv[i + 2]]
      if step then step[1] = step[1] + 1
      else capped[argv[i + 2]] = {1, tonumber(argv[i + 3]), argv[i + 4] .. argv[i + 5]} end
    end
    i = i + tonumber(argv[i]) + 1
  end
  for key, step in pairs(capped) do
    local evicted = redis.call('ZCARD', key) + step[1] - step[2]
    if evicted > 0 then
      for _, adv in ipairs(redis.call('ZRANGE', key, 0, evicted - 1)) do redis.call('EXISTS', step[3] .. adv) end
    end
  end
end
probe(ARGV)
"""

_RUN_BODY = """
local function promote(prefix, ttl, young)
  for _, index in ipairs(INDEXES) do
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
local added = 0  -- the answer of the last plain command: a ZADD's count of new members
while i <= n do
  local c = tonumber(ARGV[i])
  local name = ARGV[i + 1]
  if name == '@ONCE' then
    if redis.call('ZADD', ARGV[i + 2], 'NX', ARGV[i + 3], ARGV[i + 3]) == 0 then return -1 end
    if tonumber(ARGV[i + 3]) % 64 == 0 or redis.call('ZCARD', ARGV[i + 2]) == 1 then  -- now and then, and when new
      redis.call('ZREMRANGEBYRANK', ARGV[i + 2], 0, -tonumber(ARGV[i + 4]) - 1)
      redis.call('EXPIRE', ARGV[i + 2], ARGV[i + 5])
    end
  elseif name == '@PROMOTE' then
    promote(ARGV[i + 2], tonumber(ARGV[i + 3]), tonumber(ARGV[i + 4]))
  elseif name == '@CAPINDEX' then
    if added ~= 0 then cap_index(ARGV[i + 2], tonumber(ARGV[i + 3]), ARGV[i + 4], ARGV[i + 5]) end
  elseif name == '@TRIM' then
    if added ~= 0 then redis.call('ZREMRANGEBYRANK', ARGV[i + 2], 0, -tonumber(ARGV[i + 3]) - 1) end
  elseif name == '@EXPIREMAX' then
    if redis.call('TTL', ARGV[i + 2]) < tonumber(ARGV[i + 3]) then redis.call('EXPIRE', ARGV[i + 2], ARGV[i + 3]) end
  elseif name == '@CAPHASH' then
    if redis.call('HLEN', ARGV[i + 2]) > tonumber(ARGV[i + 3]) then redis.call('DEL', ARGV[i + 2]) end
  else
    added = redis.call(unpack(ARGV, i + 1, i + c))
  end
  i = i + c + 1
end
return n
"""

RUN = _RUN_HEAD + _RUN_BODY
RUN_CLUSTER = _RUN_HEAD + _RUN_PROBE + _RUN_BODY


# Popularity, in the advertisers' slots: KEYS day keys (one on a cluster, or several sharing a slot);
# ARGV the TTL, then for each key the count of its skus followed by that many (weight, sku) pairs.
# One hit adds its weight to each of its skus; a batch (``tracker.linger``) adds its hits' sums.
POPULAR = """
local i = 2
for k = 1, #KEYS do
  local last = i + 2 * tonumber(ARGV[i])
  for j = i + 1, last, 2 do redis.call('ZINCRBY', KEYS[k], ARGV[j], ARGV[j + 1]) end
  redis.call('EXPIRE', KEYS[k], ARGV[1])
  i = last + 1
end
return #KEYS
"""


def popular_script_args(weights: dict[str, dict[str, float]], ttl: int) -> tuple[list, list]:
    """``POPULAR``'s KEYS and ARGV adding ``weights`` (day key -> sku -> weight), each key kept ``ttl`` seconds."""
    args: list = [ttl]
    for skus in weights.values():
        args.append(len(skus))
        for sku, weight in skus.items():
            args += (weight, sku)
    return list(weights), args
