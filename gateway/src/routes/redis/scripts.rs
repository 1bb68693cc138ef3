//! The route table's Lua scripts: every change of a route, its sets and presence is one
//! script, so they never disagree half-way (the keys are listed in `super`'s header).

/// KEYS: route, online, pod set, seen (unused), watchers. ARGV: value, device, member, route
/// ttl, online ttl. Returns the value it replaced (or `''`), `'1'` when the online set was
/// empty (the user's first device) and then the pods watching the user, else `'0'`.
pub(super) const REGISTER: &str = r#"
local old = redis.call('GET', KEYS[1])
local out = {old or '', '0'}
if redis.call('SCARD', KEYS[2]) == 0 then
  out[2] = '1'
  for _, pod in ipairs(redis.call('HKEYS', KEYS[5])) do out[#out + 1] = pod end
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[4])
redis.call('SADD', KEYS[2], ARGV[2])
redis.call('EXPIRE', KEYS[2], ARGV[5])
redis.call('SADD', KEYS[3], ARGV[3])
return out
"#;

/// KEYS: route, online, pod set, seen, watchers. ARGV: value, device, member, -, -, now, seen
/// ttl. Compare-and-delete on the value (a route that expired counts as ours: its device
/// leaves the online set too). `{'0'}`: a newer connection holds the route; `{'1'}`: removed;
/// `{'2', pods…}`: removed, and it was the user's last device (seen set to now), with the pods
/// watching the user; `{'3', pods…}`: the route had expired, last device.
pub(super) const UNREGISTER: &str = r#"
redis.call('SREM', KEYS[3], ARGV[3])
local cur = redis.call('GET', KEYS[1])
if cur and cur ~= ARGV[1] then
  return {'0'}
end
if cur then
  redis.call('DEL', KEYS[1])
end
if redis.call('SREM', KEYS[2], ARGV[2]) == 1 and redis.call('SCARD', KEYS[2]) == 0 then
  redis.call('SET', KEYS[4], ARGV[6], 'EX', ARGV[7])
  local out = {cur and '2' or '3'}
  for _, pod in ipairs(redis.call('HKEYS', KEYS[5])) do out[#out + 1] = pod end
  return out
end
return {cur and '1' or '0'}
"#;

/// KEYS: route, online, pod set, seen (unused), watchers. ARGV: value, device, member, route
/// ttl, online ttl. Extends the route if it is ours, re-creates it if it expired (or Redis lost
/// it), leaves a newer connection's route alone. `{'2', pods…}`: the device came back into an
/// empty online set (the user is online again), with the pods watching the user; `{'1'}`:
/// refreshed; `{'0'}`: not ours.
pub(super) const REFRESH: &str = r#"
local cur = redis.call('GET', KEYS[1])
local created = '0'
if cur == ARGV[1] then
  redis.call('EXPIRE', KEYS[1], ARGV[4])
elseif not cur then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[4])
  redis.call('SADD', KEYS[3], ARGV[3])
  created = '1'
else
  return {'0', '0'}
end
local back = redis.call('SADD', KEYS[2], ARGV[2]) == 1 and redis.call('SCARD', KEYS[2]) == 1
redis.call('EXPIRE', KEYS[2], ARGV[5])
if not back then
  return {'1', created}
end
local out = {'2', created}
for _, pod in ipairs(redis.call('HKEYS', KEYS[5])) do out[#out + 1] = pod end
return out
"#;

/// KEYS: the users' watchers hashes, then the pod's watching set. ARGV: pod, each user's
/// delta, then the users, in KEYS' order. A count at or below 0 is deleted, so a -1 that
/// overtook its +1 can only leave a count too high, never too low.
pub(super) const WATCH: &str = r#"
local n = #KEYS - 1
for i = 1, n do
  local user = ARGV[n + 1 + i]
  if redis.call('HINCRBY', KEYS[i], ARGV[1], ARGV[i + 1]) <= 0 then
    redis.call('HDEL', KEYS[i], ARGV[1])
    redis.call('SREM', KEYS[n + 1], user)
  else
    redis.call('SADD', KEYS[n + 1], user)
  end
end
return n
"#;

/// KEYS: the users' online sets. ARGV: the seen keys' prefix (`{p}:seen:`), then the users in
/// KEYS' order. For each user: -1 online, else its `lastSeen` (0: never seen).
pub(super) const PRESENCE: &str = r#"
local out = {}
for i, online in ipairs(KEYS) do
  if redis.call('SCARD', online) > 0 then
    out[i] = -1
  else
    out[i] = tonumber(redis.call('GET', ARGV[1] .. ARGV[i + 1]) or '0')
  end
end
return out
"#;

/// KEYS: the pod's set, servers, the pod's watching set. ARGV: pod, key prefix, now, chunk,
/// seen ttl, silent-before (or `''`). Pops up to a chunk of the pod's `user:device` members;
/// each route still the pod's is deleted, and a device whose route is gone leaves its user's
/// online set (the last one: seen set to now, the user returned with the other pods watching
/// it). Pops up to a chunk of the users the pod watched and drops its counts. Once both sets
/// are empty, the pod is dropped from servers if its last beat is still before silent-before.
/// Returns {members left, {{user, pods…}…}}.
pub(super) const REAP: &str = r#"
for _, user in ipairs(redis.call('SPOP', KEYS[3], ARGV[4])) do
  redis.call('HDEL', ARGV[2] .. ':watchers:' .. user, ARGV[1])
end
local left = {}
local mine = ARGV[1] .. '|'
for _, m in ipairs(redis.call('SPOP', KEYS[1], ARGV[4])) do
  local user, device = string.match(m, '^(.*):([^:]*)$')
  if user then
    local route = ARGV[2] .. ':route:' .. m
    local cur = redis.call('GET', route)
    if cur and string.sub(cur, 1, #mine) == mine then
      redis.call('DEL', route)
      cur = false
    end
    local online = ARGV[2] .. ':online:' .. user
    if not cur and redis.call('SREM', online, device) == 1 and redis.call('SCARD', online) == 0 then
      redis.call('SET', ARGV[2] .. ':seen:' .. user, ARGV[3], 'EX', ARGV[5])
      local gone = {user}
      for _, pod in ipairs(redis.call('HKEYS', ARGV[2] .. ':watchers:' .. user)) do
        if pod ~= ARGV[1] then gone[#gone + 1] = pod end
      end
      left[#left + 1] = gone
    end
  end
end
local more = redis.call('SCARD', KEYS[1]) + redis.call('SCARD', KEYS[3])
if more == 0 and ARGV[6] ~= '' then
  local beat = redis.call('ZSCORE', KEYS[2], ARGV[1])
  if beat and tonumber(beat) < tonumber(ARGV[6]) then
    redis.call('ZREM', KEYS[2], ARGV[1])
  end
end
return {more, left}
"#;

/// KEYS: the users' online sets, then `{p}:table`. ARGV: the route keys' prefix
/// (`{p}:route:`), then the users in KEYS' order. Returns `index, device, value` triples (index
/// into the users, from 1) for every online device that has a route, then the table's birth
/// (`''` when none: Redis lost everything and no pod has beaten since). One round trip for the whole lookup, where SMEMBERS then MGET
/// took two; it reads route keys it was not given, as a standalone Redis (or keys sharing one
/// hash slot) allows.
pub(super) const LOOKUP: &str = r#"
local found = {}
for i = 1, #KEYS - 1 do
  for _, device in ipairs(redis.call('SMEMBERS', KEYS[i])) do
    local value = redis.call('GET', ARGV[1] .. ARGV[i + 1] .. ':' .. device)
    if value then
      found[#found + 1] = tostring(i)
      found[#found + 1] = device
      found[#found + 1] = value
    end
  end
end
found[#found + 1] = redis.call('GET', KEYS[#KEYS]) or ''
return found
"#;
