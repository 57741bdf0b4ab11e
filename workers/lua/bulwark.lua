#!lua name=bulwark
--[[
Redis 7 functions of bulwark, loaded with FUNCTION LOAD REPLACE by the
workers (embedded in the binary at build time) and called with FCALL.

Keys (everything written here gets a TTL in the same call; the C side
builds their names in workers/api/keys.c):
  bwk:{ID}       hash, the cached record of API key ID:
                 tenant, sha (hex SHA-256 of the secret), scopes (comma list),
                 kint, kburst (key policy: emission interval in µs, burst),
                 tint, tburst (tenant-wide policy), krate, trate (as typed),
                 revoked ("1": tombstone, wins over any later fill)
  bwneg:{ID}     "1" while ID is known not to exist (negative cache)
  rl:{ID}:k      GCRA theoretical arrival time (µs) of the key policy
  rl:t:TENANT    the same for the tenant-wide policy
  rl:ip:PREFIX   the same for failed authentications from one client address

GCRA (same as a token bucket of `burst` tokens refilled one per `interval`):
a request is allowed when new_tat - now <= burst * interval, where
new_tat = max(tat, now) + interval. The clock is Redis TIME (µs) unless a
test passes one. Integers only: Lua numbers are doubles, exact to 2^53 µs.
]]

local function now_us(given)
  if given ~= nil and given ~= '' then
    return tonumber(given)
  end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end

-- One policy, from the stored TAT (a string or false): returns allowed,
-- new_tat, remaining, reset_after, retry_after.
local function gcra_at(stored, interval, burst, now)
  local tat = tonumber(stored or '0')
  if tat < now then tat = now end
  local new_tat = tat + interval
  local limit = burst * interval
  if new_tat - now > limit then
    return false, tat, 0, tat - now, new_tat - now - limit
  end
  return true, new_tat, math.floor((limit - (new_tat - now)) / interval), new_tat - now, 0
end

local function gcra(key, interval, burst, now)
  return gcra_at(redis.call('GET', key), interval, burst, now)
end

local function commit(key, tat, now)
  -- Expires exactly when the bucket is full again: nothing immortal.
  redis.call('SET', key, string.format('%d', tat), 'PX', math.floor((tat - now) / 1000) + 1)
end

-- Charges one failed authentication to the client's bucket; returns
-- {allowed (0/1), retry_after_us}.
local function charge_ip(ip_key, interval, burst, now)
  local ok, tat, _, _, retry = gcra(ip_key, interval, burst, now)
  if ok then
    commit(ip_key, tat, now)
    return 1, 0
  end
  return 0, retry
end

local function peek_ip(ip_key, interval, burst, now)
  local ok, _, _, _, retry = gcra(ip_key, interval, burst, now)
  return ok, retry
end

--[[
bw_auth KEYS: bwk:{ID}, bwneg:{ID}, rl:{ID}:k, rl:ip:PREFIX
        ARGV: sha_hex, ip_interval_us, ip_burst, now_us ('' = TIME)
Returns one of
  {'ok',      tenant, scopes, krate, kburst, trate, tburst, <key policy: remaining, reset_us, 0>, <tenant: remaining, reset_us, 0>}
  {'limited', tenant, scopes, krate, kburst, trate, tburst, <key: remaining, reset_us, retry_us>, <tenant: remaining, reset_us, retry_us>}
  {'miss'}                       not cached: read PostgreSQL, bw_key_fill, call again
  {'unknown', ip_ok, retry_us}   negative-cached (the failure is charged to the IP)
  {'revoked', ip_ok, retry_us}
  {'bad_secret', ip_ok, retry_us}
  {'ip_limited', retry_us}       miss, but this address has no failed attempts left
A request denied by any policy consumes nothing from any policy.
workers/api/auth.c reads these slots by name (enum bw_auth_reply): change
both together.
]]
local function bw_auth(keys, args)
  local rec_key, neg_key, key_bucket, ip_key = keys[1], keys[2], keys[3], keys[4]
  local ip_interval, ip_burst = tonumber(args[2]), tonumber(args[3])
  local now = now_us(args[4])

  local rec = redis.call('HMGET', rec_key, 'tenant', 'sha', 'scopes', 'kint', 'kburst',
                         'tint', 'tburst', 'krate', 'trate', 'revoked')
  if not rec[1] and not rec[10] then
    if redis.call('EXISTS', neg_key) == 1 then
      local ok, retry = charge_ip(ip_key, ip_interval, ip_burst, now)
      return {'unknown', ok, retry}
    end
    local ok, retry = peek_ip(ip_key, ip_interval, ip_burst, now)
    if not ok then return {'ip_limited', retry} end
    return {'miss'}
  end
  if rec[10] == '1' then
    local ok, retry = charge_ip(ip_key, ip_interval, ip_burst, now)
    return {'revoked', ok, retry}
  end
  if rec[2] ~= args[1] then
    local ok, retry = charge_ip(ip_key, ip_interval, ip_burst, now)
    return {'bad_secret', ok, retry}
  end

  local tenant_bucket = 'rl:t:' .. rec[1]
  local kint, kburst = tonumber(rec[4]), tonumber(rec[5])
  local tint, tburst = tonumber(rec[6]), tonumber(rec[7])
  local tats = redis.call('MGET', key_bucket, tenant_bucket)
  local k_ok, k_tat, k_rem, k_reset, k_retry = gcra_at(tats[1], kint, kburst, now)
  local t_ok, t_tat, t_rem, t_reset, t_retry = gcra_at(tats[2], tint, tburst, now)
  if k_ok and t_ok then
    commit(key_bucket, k_tat, now)
    commit(tenant_bucket, t_tat, now)
    return {'ok', rec[1], rec[3], rec[8], kburst, rec[9], tburst,
            k_rem, k_reset, 0, t_rem, t_reset, 0}
  end
  -- Nothing is committed: a denied request costs no policy anything.
  if k_ok then k_rem, k_reset = k_rem + 1, k_reset - kint end
  if t_ok then t_rem, t_reset = t_rem + 1, t_reset - tint end
  return {'limited', rec[1], rec[3], rec[8], kburst, rec[9], tburst,
          k_rem, k_reset, k_retry, t_rem, t_reset, t_retry}
end

--[[
bw_key_fill KEYS: bwk:{ID}, bwneg:{ID}
            ARGV: ttl_ms, then field, value pairs
Writes the record only when none is there: a tombstone written by a
revocation while this worker was reading PostgreSQL is never overwritten.
Returns 1 when written.
]]
local function bw_key_fill(keys, args)
  if redis.call('EXISTS', keys[1]) == 1 then return 0 end
  local fields = {}
  for i = 2, #args do fields[#fields + 1] = args[i] end
  redis.call('HSET', keys[1], unpack(fields))
  redis.call('PEXPIRE', keys[1], tonumber(args[1]))
  redis.call('DEL', keys[2])
  return 1
end

--[[
bw_auth_fail KEYS: bwneg:{ID} (or '' when the key id was malformed), rl:ip:PREFIX
             ARGV: neg_ttl_ms, ip_interval_us, ip_burst, now_us ('' = TIME)
Records an unknown key (negative cache) and charges the client's bucket.
Returns {ip_ok, retry_us} (enum bw_auth_reply, R_FAIL_*).
]]
local function bw_auth_fail(keys, args)
  if keys[1] ~= '' then
    redis.call('SET', keys[1], '1', 'PX', tonumber(args[1]))
  end
  local ok, retry = charge_ip(keys[2], tonumber(args[2]), tonumber(args[3]), now_us(args[4]))
  return {ok, retry}
end

--[[
bw_key_revoke KEYS: bwk:{ID}   ARGV: ttl_ms
Replaces the cached record with a tombstone that every worker sees on its
next request. Returns 1.
]]
local function bw_key_revoke(keys, args)
  redis.call('DEL', keys[1])
  redis.call('HSET', keys[1], 'revoked', '1')
  redis.call('PEXPIRE', keys[1], tonumber(args[1]))
  return 1
end

--[[
bw_key_created KEYS: bwneg:{ID}
A new key must not stay hidden behind a negative-cache entry.
]]
local function bw_key_created(keys, args)
  return redis.call('DEL', keys[1])
end

--[[
Cache-aside with versions: correctness from
a generation counter, efficiency from a lease.
  KEY   entry hash: gen, body, soft (µs: refresh after this)
  GEN   the generation: bumped after every COMMIT that changes what the
        entry shows. Its values come from TIME and only grow, so a counter
        lost to eviction never brings an old generation back.
  LEASE who may recompute now (SET NX PX), so a miss costs one query,
        not one per waiting worker.

bw_cache_get KEYS: entry, gen, lease   ARGV: token, lease_ms, now_us ('' = TIME)
Returns {state, gen, body|false}; state is
  'hit'     entry of the current generation, fresh
  'refresh' the same but due for refresh, and this caller holds the lease
  'miss'    no entry of this generation; this caller holds the lease
  'wait'    no entry of this generation; another caller is computing it
The body of an older generation comes back with miss/wait, for use only
when the database is down (served as stale).
]]
local function current_gen(gen_key, now)
  local g = redis.call('GET', gen_key)
  if g then return g end
  g = string.format('%d', now)
  redis.call('SET', gen_key, g, 'PX', 2592000000)
  return g
end

local function bw_cache_get(keys, args)
  local now = now_us(args[3])
  local gen = current_gen(keys[2], now)
  local e = redis.call('HMGET', keys[1], 'gen', 'body', 'soft')
  if e[1] == gen then
    if now < tonumber(e[3]) then return {'hit', gen, e[2]} end
    if redis.call('SET', keys[3], args[1], 'NX', 'PX', tonumber(args[2])) then
      return {'refresh', gen, e[2]}
    end
    return {'hit', gen, e[2]}
  end
  if redis.call('SET', keys[3], args[1], 'NX', 'PX', tonumber(args[2])) then
    return {'miss', gen, e[2] or false}
  end
  return {'wait', gen, e[2] or false}
end

--[[
bw_cache_fill KEYS: entry, gen, lease   ARGV: token, gen_at_start, body, soft_ms, hard_ms
Stores body only if the generation is still the one read before the
computation began: a fill computed before a write's bump is dropped.
Releases the lease when it is ours. Returns 1 stored, 0 dropped.
]]
local function bw_cache_fill(keys, args)
  local now = now_us('')
  if redis.call('GET', keys[3]) == args[1] then redis.call('DEL', keys[3]) end
  if redis.call('GET', keys[2]) ~= args[2] then return 0 end
  redis.call('HSET', keys[1], 'gen', args[2], 'body', args[3],
             'soft', string.format('%d', now + tonumber(args[4]) * 1000))
  redis.call('PEXPIRE', keys[1], tonumber(args[5]))
  return 1
end

--[[
bw_cache_release KEYS: lease   ARGV: token
Gives the lease back after a failed computation, so the next reader tries
at once instead of waiting for a fill that will not come. Returns 1 if it
was ours.
]]
local function bw_cache_release(keys, args)
  if redis.call('GET', keys[1]) == args[1] then
    redis.call('DEL', keys[1])
    return 1
  end
  return 0
end

--[[
bw_cache_bump KEYS: gen   Returns the new generation (> every earlier one).
]]
local function bw_cache_bump(keys, args)
  local now = now_us('')
  local g = tonumber(redis.call('GET', keys[1]) or '0')
  if g < now then g = now else g = g + 1 end
  local s = string.format('%d', g)
  redis.call('SET', keys[1], s, 'PX', 2592000000)
  return s
end

redis.register_function('bw_auth', bw_auth)
redis.register_function('bw_key_fill', bw_key_fill)
redis.register_function('bw_auth_fail', bw_auth_fail)
redis.register_function('bw_key_revoke', bw_key_revoke)
redis.register_function('bw_key_created', bw_key_created)
redis.register_function('bw_cache_get', bw_cache_get)
redis.register_function('bw_cache_fill', bw_cache_fill)
redis.register_function('bw_cache_bump', bw_cache_bump)
redis.register_function('bw_cache_release', bw_cache_release)

--[[
bw_tel_latest_put KEYS: tl:TENANT:DEVICE   hash {ts, id, doc}: a device's newest reading
                  ARGV: ts_ms, id (24 hex digits), doc (the reading as JSON), ttl_ms
Keeps the newest reading only: writes when (ts, id) is greater than what is
there, ts compared as integers (Unix ms, exact in a Lua double), then id as
a string (hex ObjectIds compare like their bytes: the order of MongoDB's
sort {ts: -1, _id: -1}). So a late or concurrent fill with an older reading
never replaces a newer one. Sets the TTL again on each write.
Returns 1 when written, 0 when what is there is as new or newer.
]]
local function bw_tel_latest_put(keys, args)
  local ts = tonumber(args[1])
  local cur = redis.call('HMGET', keys[1], 'ts', 'id')
  if cur[1] then
    local cts = tonumber(cur[1])
    if cts > ts or (cts == ts and cur[2] >= args[2]) then return 0 end
  end
  redis.call('HSET', keys[1], 'ts', args[1], 'id', args[2], 'doc', args[3])
  redis.call('PEXPIRE', keys[1], tonumber(args[4]))
  return 1
end

--[[
bw_tel_latest_get KEYS: tl:TENANT:DEVICE
Returns the cached reading's JSON, or nil.
]]
local function bw_tel_latest_get(keys, args)
  return redis.call('HGET', keys[1], 'doc')
end

redis.register_function('bw_tel_latest_put', bw_tel_latest_put)
redis.register_function{function_name = 'bw_tel_latest_get', callback = bw_tel_latest_get,
                        flags = {'no-writes'}}
