"""The Lua scripts of the Redis live state (`orchestrator/live/redis.py`): each does in
one round trip, and atomically, what would otherwise take several."""

# Take the lock when free, renew it when ours: one atomic step, one round trip.
ACQUIRE = """
local current = redis.call('GET', KEYS[1])
if current == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if current then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2])
return 1
"""
# Delete only when ours: a holder whose lock expired and was taken must not free it.
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

# One end's estimate moved by a report, read and written in one atomic step (two
# replicas may take the same agent's heartbeats in turn): links.remember, in Lua.
# KEYS: the estimate, the index. ARGV: member, mbps, rtt_ms, now (s), fresh_s, keep (ms),
# MIN_WEIGHT, TAU_S.
REMEMBER = """
local mbps, rtt, now = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local value = {last_mbps = mbps, last_rtt_ms = rtt, at = now, fresh_s = tonumber(ARGV[5]),
               mbps = mbps, rtt_ms = rtt}
local raw = redis.call('GET', KEYS[1])
if raw then
  local old = cjson.decode(raw)
  if old.mbps and old.at then
    local age = math.max(now - old.at, 0)
    local w = 1 - (1 - tonumber(ARGV[7])) * math.exp(-age / tonumber(ARGV[8]))
    value.mbps = old.mbps + w * (mbps - old.mbps)
    value.rtt_ms = old.rtt_ms + w * (rtt - old.rtt_ms)
  end
end
redis.call('SET', KEYS[1], cjson.encode(value), 'PX', ARGV[6])
redis.call('ZADD', KEYS[2], math.floor(now * 1000) + tonumber(ARGV[6]), ARGV[1])
return 1
"""

# Each key's heartbeat and remaining TTL (ms; -2 when gone) in one round trip: the TTL
# is Redis's own, so a reader's expiry does not depend on the writer's clock.
READ_WITH_TTL = """
local out = {}
for i, key in ipairs(KEYS) do
  local value = redis.call('GET', key)
  out[2 * i - 1] = value
  if value then
    out[2 * i] = redis.call('PTTL', key)
  else
    out[2 * i] = -2
  end
end
return out
"""

# A batch of heartbeats (`RedisLiveState._write_beats`): each one's key with its TTL, its
# index entry scored by expiry, and one entry of the changes stream listing the batch.
# KEYS: the index, the changes stream, then one heartbeat key per device. ARGV: now (ms),
# the stream's MINID, the entry (the device ids as a JSON list), the length of the keys'
# prefix before the device id, then per key: the heartbeat (JSON) and its TTL (ms).
WRITE_BEATS = """
local now, skip = tonumber(ARGV[1]), tonumber(ARGV[4])
local scores = {}
for i = 3, #KEYS do
  local ttl = ARGV[2 * i]
  redis.call('SET', KEYS[i], ARGV[2 * i - 1], 'PX', ttl)
  scores[#scores + 1] = now + tonumber(ttl)
  scores[#scores + 1] = string.sub(KEYS[i], skip + 1)
  if #scores >= 1000 then -- unpack's limit on the stack is a few thousand values
    redis.call('ZADD', KEYS[1], unpack(scores))
    scores = {}
  end
end
if #scores > 0 then
  redis.call('ZADD', KEYS[1], unpack(scores))
end
redis.call('XADD', KEYS[2], 'MINID', '~', ARGV[2], '*', 'd', ARGV[3])
return #KEYS - 2
"""
