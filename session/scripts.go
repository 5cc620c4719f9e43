package session

import (
	"strconv"

	"github.com/redis/go-redis/v9"
)

// The Redis store's operations, each one Lua script: Redis runs a script
// alone, so two replicas racing on one handle cannot both win.
//
// Keys (base is KeyPrefix + "{sessions}:", one hash tag, so every key is
// in one Cluster slot and a script may touch any of them):
//
//	base s:<id>     hash: a session (fields below); expires with it, or
//	                when an ended one is forgotten (its until)
//	base h:<hash>   string: the session id of a handle, by the handle's
//	                SHA-256; the head's expires with its session, a
//	                replaced one's at its session's hold (below)
//	base u:<user>   sorted set: the user's live session ids by creation
//	base live       sorted set: live session ids by expiry (Count)
//	base revoked    sorted set: revoked session ids by until
//	base dev:<hash> hash: a device authorization request, by its device
//	                code's SHA-256 (fields below); expires a little after
//	                the request (deviceLinger)
//	base uc:<code>  string: the device code hash of a user code
//	                ("BDFH-KMNP"); expires with its request
//
// A session hash has id, user, client, profile, scope, role, stamp,
// created, refreshed, exp (times in Unix milliseconds), state (live or
// ended), head (hash of the current handle), prev (of the handle head
// replaced), old (older ones, newest first, space-separated), used (when
// prev was replaced), succ (head sealed under prev's handle), hold and
// holdhead (below), and once ended cause, ended and until.
//
// A replaced handle must be found as long as its session lives, for its
// reuse to be detected, and the session's expiry moves with every
// rotation. Rather than extend every replaced handle's key at each
// rotation (up to 17 PEXPIREs), a rotation extends them all only when the
// new expiry passes hold, and then to hold = exp + (exp - now); otherwise
// it gives only the handle it replaces the same hold. So every replaced
// handle's key lives until hold, which is past exp, and at most one
// refresh lifetime past the end of a session that expires (an ended
// session's keys go at its until). The user's set and live are extended
// to hold as well. hold is trusted only while holdhead is head: a
// rotation by an older tollgate, which keeps no hold, leaves holdhead
// behind, and the next rotation extends them all again.
//
// A device request hash has client, scope, created, exp, interval (ms),
// status (pending, approved, denied or used), user, profile, name, ucode
// (the user code) and polled (when it was last polled while pending; 0:
// never).
//
// Every script has KEYS[1] = base live (for routing) and ARGV[1] = base,
// ARGV[2] = now (Unix ms, the caller's clock), ARGV[3] = the revocation
// channel, ARGV[4] = how long a session the store ends by itself is
// remembered (ms; 0: until it would have expired); its own arguments
// follow. It answers {status, ended, ...}: ended is the JSON of the
// sessions it ended ([{"id":…,"u":until}], also published on the
// channel) or "".
var luaPrelude = `
local base, now, channel, revokefor = ARGV[1], tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4])
local live, revoked = base .. 'live', base .. 'revoked'
local kept = ` + strconv.Itoa(keptHandles) + `
local function skey(id) return base .. 's:' .. id end
local function hkey(h) return base .. 'h:' .. h end
local function ukey(u) return base .. 'u:' .. u end

-- expireat makes key expire at t, or deletes it when t has passed.
local function expireat(key, t)
  if t <= now then redis.call('DEL', key) else redis.call('PEXPIRE', key, t - now) end
end

-- extend makes an existing key live at least until t.
local function extend(key, t)
  local ttl = redis.call('PTTL', key)
  if ttl == -1 or (ttl >= 0 and ttl < t - now) then redis.call('PEXPIRE', key, t - now) end
end

-- handles lists the handle hashes of a session's head, prev and old.
local function handles(head, prev, old)
  local hs = {}
  if head and head ~= '' then table.insert(hs, head) end
  if prev and prev ~= '' then table.insert(hs, prev) end
  if old and old ~= '' then
    for h in string.gmatch(old, '%S+') do table.insert(hs, h) end
  end
  return hs
end

-- view returns a session's fields in the order Go reads them.
local function view(k)
  return redis.call('HMGET', k, 'id', 'user', 'client', 'profile', 'scope', 'role', 'stamp', 'created', 'refreshed', 'exp')
end

-- absent answers for a session without a live record.
local function absent(id)
  local u = redis.call('ZSCORE', revoked, id)
  if u and tonumber(u) > now then return 'revoked' end
  return 'notfound'
end

-- state returns 'live' with the session's fields (fs: field names), or
-- 'revoked' or 'notfound'.
local function state(id, fs)
  local f = redis.call('HMGET', skey(id), 'state', 'exp', unpack(fs))
  if f[1] == 'live' and tonumber(f[2]) > now then return 'live', f end
  if f[1] == 'live' then return 'notfound', f end
  return absent(id), f
end

local ended = {}

-- finish ends session id for cause, remembered until t.
local function finish(id, cause, t)
  local k = skey(id)
  local f = redis.call('HMGET', k, 'state', 'user', 'head', 'prev', 'old', 'until')
  if f[1] == 'live' then
    redis.call('HSET', k, 'state', 'ended', 'cause', cause, 'ended', now, 'until', t)
    redis.call('HDEL', k, 'succ')
    redis.call('ZREM', live, id)
    redis.call('ZREM', ukey(f[2]), id)
  elseif f[1] == 'ended' then
    if tonumber(f[6]) > t then t = tonumber(f[6]) else redis.call('HSET', k, 'until', t) end
  end
  if f[1] then
    for _, h in ipairs(handles(f[3], f[4], f[5])) do expireat(hkey(h), t) end
    expireat(k, t)
  end
  if t > now then
    local u = redis.call('ZSCORE', revoked, id)
    if not u or tonumber(u) < t then redis.call('ZADD', revoked, t, id) end
    extend(revoked, t)
  end
  table.insert(ended, {id = id, u = t})
end

-- publish tells every replica about the sessions ended, and returns
-- what it told.
local function publish()
  if #ended == 0 then return '' end
  redis.call('ZREMRANGEBYSCORE', revoked, '-inf', now)
  local msg = cjson.encode(ended)
  redis.call('PUBLISH', channel, msg)
  return msg
end
`

// script makes a Redis script of the prelude and body.
func script(body string) *redis.Script { return redis.NewScript(luaPrelude + body) }

// createScript: ARGV[5..14] = id, user, client, profile, scope, role,
// stamp, created, refreshed, exp; ARGV[15] = handle hash; ARGV[16] =
// limit (0: none); ARGV[17] = "1" to refuse beyond it. Answers ok (with
// the evicted ids after ended), limit or exists.
var createScript = script(`
local id, user, hh = ARGV[5], ARGV[6], ARGV[15]
local created, exp = tonumber(ARGV[12]), tonumber(ARGV[14])
local max, refuse = tonumber(ARGV[16]), ARGV[17] == '1'
local k = skey(id)
local f = redis.call('HMGET', k, 'state', 'head')
if f[1] then
  if f[1] == 'live' and f[2] == hh then return {'ok', ''} end -- this Create again
  return {'exists', ''}
end
if redis.call('ZSCORE', revoked, id) or redis.call('EXISTS', hkey(hh)) == 1 then return {'exists', ''} end
local uk = ukey(user)
local alive = {}
for _, sid in ipairs(redis.call('ZRANGE', uk, 0, -1)) do
  local g = redis.call('HMGET', skey(sid), 'state', 'exp')
  if g[1] == 'live' and tonumber(g[2]) > now then
    table.insert(alive, {sid, tonumber(g[2])})
  else
    redis.call('ZREM', uk, sid)
  end
end
if max > 0 and #alive >= max then
  if refuse then return {'limit', ''} end
  for i = 1, #alive - max + 1 do
    local t = alive[i][2]
    if revokefor > 0 then t = now + revokefor end
    finish(alive[i][1], 'limit', t)
  end
end
redis.call('HSET', k, 'id', id, 'user', user, 'client', ARGV[7], 'profile', ARGV[8], 'scope', ARGV[9],
  'role', ARGV[10], 'stamp', ARGV[11], 'created', ARGV[12], 'refreshed', ARGV[13], 'exp', ARGV[14],
  'state', 'live', 'head', hh)
redis.call('PEXPIRE', k, exp - now)
redis.call('SET', hkey(hh), id, 'PX', exp - now)
redis.call('ZREMRANGEBYSCORE', live, '-inf', now)
redis.call('ZADD', live, exp, id)
extend(live, exp)
redis.call('ZADD', uk, created, id)
extend(uk, exp)
return {'ok', publish()}
`)

// rotateScript: ARGV[5] = presented hash, ARGV[6] = next hash, ARGV[7] =
// client, ARGV[8] = new expiry, ARGV[9] = reuse interval (ms), ARGV[10] =
// next sealed under presented. Answers rotated (view), retry (view,
// sealed successor), reused, wrongclient, revoked, notfound or exists.
var rotateScript = script(`
local hp, hn, client, exp, reuse = ARGV[5], ARGV[6], ARGV[7], tonumber(ARGV[8]), tonumber(ARGV[9])
local sid = redis.call('GET', hkey(hp))
if not sid then return {'notfound', ''} end
local st, f = state(sid, {'head', 'prev', 'old', 'used', 'succ', 'user', 'client', 'hold', 'holdhead'})
if st ~= 'live' then return {st, ''} end
local retry = f[4] == hp and now - tonumber(f[6]) <= reuse
if f[3] ~= hp and not retry then -- theft, whichever client presents it
  local t = tonumber(f[2])
  if revokefor > 0 then t = now + revokefor end
  finish(sid, 'reuse', t)
  return {'reused', publish()}
end
if f[9] ~= client then return {'wrongclient', ''} end
local k = skey(sid)
if retry then return {'retry', '', view(k), f[7]} end
if redis.call('EXISTS', hkey(hn)) == 1 then return {'exists', ''} end
local old = {}
if f[4] and f[4] ~= '' then
  table.insert(old, f[4])
  if f[5] and f[5] ~= '' then
    for h in string.gmatch(f[5], '%S+') do table.insert(old, h) end
  end
end
while #old > kept do redis.call('DEL', hkey(table.remove(old))) end
local hold = tonumber(f[10]) or 0
if f[11] ~= hp or hold < exp then
  hold = exp + (exp - now)
  for _, h in ipairs(old) do redis.call('PEXPIRE', hkey(h), hold - now) end
end
redis.call('HSET', k, 'head', hn, 'prev', hp, 'old', table.concat(old, ' '), 'succ', ARGV[10],
  'used', now, 'refreshed', now, 'exp', exp, 'hold', hold, 'holdhead', hn)
redis.call('PEXPIRE', k, exp - now)
redis.call('SET', hkey(hn), sid, 'PX', exp - now)
redis.call('PEXPIRE', hkey(hp), hold - now)
redis.call('ZADD', live, exp, sid)
extend(live, hold)
extend(ukey(f[8]), hold)
return {'rotated', '', view(k)}
`)

// lookupScript: ARGV[5] = handle hash. Answers ok (view), revoked or
// notfound.
var lookupScript = script(`
local sid = redis.call('GET', hkey(ARGV[5]))
if not sid then return {'notfound', ''} end
local st, f = state(sid, {'head'})
if st ~= 'live' then return {st, ''} end
if f[3] ~= ARGV[5] then return {'notfound', ''} end
return {'ok', '', view(skey(sid))}
`)

// getScript: ARGV[5] = id. Answers ok (view), revoked or notfound.
var getScript = script(`
local st = state(ARGV[5], {})
if st ~= 'live' then return {st, ''} end
return {'ok', '', view(skey(ARGV[5]))}
`)

// updateScript: ARGV[5] = id, ARGV[6] = profile. Answers ok, revoked or
// notfound.
var updateScript = script(`
local st = state(ARGV[5], {})
if st ~= 'live' then return {st, ''} end
redis.call('HSET', skey(ARGV[5]), 'profile', ARGV[6])
return {'ok', ''}
`)

// revokeScript: ARGV[5] = cause, ARGV[6] = until, ARGV[7...] = ids.
var revokeScript = script(`
local t = tonumber(ARGV[6])
for i = 7, #ARGV do
  if ARGV[i] ~= '' then finish(ARGV[i], ARGV[5], t) end
end
return {'ok', publish()}
`)

// listScript: ARGV[5] = user. Answers ok with the views of the user's
// live sessions, oldest first.
var listScript = script(`
local uk = ukey(ARGV[5])
local out = {'ok', ''}
for _, sid in ipairs(redis.call('ZRANGE', uk, 0, -1)) do
  if state(sid, {}) == 'live' then
    table.insert(out, view(skey(sid)))
  else
    redis.call('ZREM', uk, sid)
  end
end
return out
`)

// countScript answers ok with the number of live sessions.
var countScript = script(`
redis.call('ZREMRANGEBYSCORE', live, '-inf', now)
return {'ok', '', redis.call('ZCARD', live)}
`)

// devicePrelude follows luaPrelude in the device scripts.
var devicePrelude = `
local linger, step = ` + strconv.FormatInt(deviceLinger.Milliseconds(), 10) + `, ` + strconv.FormatInt(slowDownStep.Milliseconds(), 10) + `
local function dkey(h) return base .. 'dev:' .. h end
local function ckey(c) return base .. 'uc:' .. c end

-- dview returns a request's fields in the order Go reads them.
local function dview(k)
  return redis.call('HMGET', k, 'client', 'scope', 'created', 'exp', 'interval', 'status', 'user', 'profile', 'name', 'ucode')
end

-- byusercode returns the key of the unexpired request of user code c, or
-- nil.
local function byusercode(c)
  local h = redis.call('GET', ckey(c))
  if not h then return nil end
  local k = dkey(h)
  local f = redis.call('HMGET', k, 'exp', 'ucode')
  if f[1] and tonumber(f[1]) > now and f[2] == c then return k end
  return nil
end
`

// deviceScript makes a Redis script of the preludes and body.
func deviceScript(body string) *redis.Script { return script(devicePrelude + body) }

// createDeviceScript: ARGV[5] = device code hash, ARGV[6] = user code,
// ARGV[7..12] = client, scope, created, exp, interval, name. Answers ok,
// codeinuse or devexists.
var createDeviceScript = deviceScript(`
local dh, uc, exp = ARGV[5], ARGV[6], tonumber(ARGV[10])
local k = dkey(dh)
local f = redis.call('HMGET', k, 'ucode', 'status', 'exp')
if f[1] then
  if f[1] == uc and f[2] == 'pending' and tonumber(f[3]) > now then return {'ok', ''} end -- this CreateDevice again
  return {'devexists', ''}
end
if byusercode(uc) then return {'codeinuse', ''} end
redis.call('HSET', k, 'client', ARGV[7], 'scope', ARGV[8], 'created', ARGV[9], 'exp', ARGV[10],
  'interval', ARGV[11], 'status', 'pending', 'user', '', 'profile', '', 'name', ARGV[12], 'ucode', uc, 'polled', 0)
redis.call('PEXPIRE', k, exp + linger - now)
redis.call('SET', ckey(uc), dh, 'PX', exp - now)
return {'ok', ''}
`)

// deviceByUserCodeScript: ARGV[5] = user code. Answers ok (view) or
// notfound.
var deviceByUserCodeScript = deviceScript(`
local k = byusercode(ARGV[5])
if not k then return {'notfound', ''} end
return {'ok', '', dview(k)}
`)

// decideDeviceScript: ARGV[5] = user code, ARGV[6] = approved or denied,
// ARGV[7] = user, ARGV[8] = profile. Answers ok, decided or notfound.
var decideDeviceScript = deviceScript(`
local k = byusercode(ARGV[5])
if not k then return {'notfound', ''} end
if redis.call('HGET', k, 'status') ~= 'pending' then return {'decided', ''} end
if ARGV[6] == 'approved' then
  redis.call('HSET', k, 'status', 'approved', 'user', ARGV[7], 'profile', ARGV[8])
else
  redis.call('HSET', k, 'status', 'denied')
end
return {'ok', ''}
`)

// pollDeviceScript: ARGV[5] = device code hash, ARGV[6] = client. Answers
// ok (view; the request is now used), notfound, or expired, denied,
// slowdown or pending (view).
var pollDeviceScript = deviceScript(`
local k = dkey(ARGV[5])
local f = redis.call('HMGET', k, 'client', 'exp', 'status', 'polled', 'interval')
if not f[1] or tonumber(f[2]) + linger <= now or f[1] ~= ARGV[6] or f[3] == 'used' then return {'notfound', ''} end
if tonumber(f[2]) <= now then return {'expired', '', dview(k)} end
if f[3] == 'denied' then return {'denied', '', dview(k)} end
if f[3] == 'approved' then
  redis.call('HSET', k, 'status', 'used')
  return {'ok', '', dview(k)}
end
local last, interval = tonumber(f[4]), tonumber(f[5])
redis.call('HSET', k, 'polled', now)
if last ~= 0 and now - last < interval then
  redis.call('HSET', k, 'interval', interval + step)
  return {'slowdown', '', dview(k)}
end
return {'pending', '', dview(k)}
`)
