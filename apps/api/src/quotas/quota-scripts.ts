// Lua run atomically by Redis, so every API replica sees one consistent set of counters and
// concurrent admissions cannot overshoot a limit.

/**
 * Per-minute limits are sliding windows, exact: a sorted set per tenant holds each admitted
 * request (member: request id, score: admission time in ms), and for tokens a hash beside it
 * holds each request's tokens and their "_total". A request counts for exactly the 60 s after
 * its admission, so no 60 s span ever holds more than the limit; with fixed minute windows,
 * 5 requests just before a minute's end and 5 just after made 10 in one second against a
 * limit of 5 per minute. Entries that left the window are dropped (and their tokens
 * subtracted from "_total") by the next admission, a few hundred at a time.
 */
const WINDOW_LUA = `
local function forget(log, amounts, since)
  while true do
    local gone = redis.call('ZRANGEBYSCORE', log, '-inf', since, 'LIMIT', 0, 500)
    if #gone == 0 then return end
    if amounts then
      local freed = 0
      for _, n in ipairs(redis.call('HMGET', amounts, unpack(gone))) do
        freed = freed + tonumber(n or '0')
      end
      redis.call('HINCRBY', amounts, '_total', 0 - freed)
      redis.call('HDEL', amounts, unpack(gone))
    end
    redis.call('ZREM', log, unpack(gone))
  end
end

-- Milliseconds until the window has room for need more (0 if it has): entries leave
-- oldest first, each freeing its amount (1 per request without an amounts hash).
local function waitFor(log, amounts, used, need, limit, now, window)
  if used + need <= limit then return 0 end
  local entries = redis.call('ZRANGE', log, 0, -1, 'WITHSCORES')
  for i = 1, #entries, 2 do
    local n = 1
    if amounts then n = tonumber(redis.call('HGET', amounts, entries[i]) or '0') end
    used = used - n
    if used + need <= limit then return tonumber(entries[i + 1]) + window - now end
  end
  return window
end

-- Milliseconds until the oldest entry leaves the window (remaining goes up), 0 if empty.
local function nextLeaves(log, now, window)
  local oldest = redis.call('ZRANGE', log, 0, 0, 'WITHSCORES')
  if #oldest == 0 then return 0 end
  return tonumber(oldest[2]) + window - now
end
`;

/**
 * Admission. KEYS: rpm (sorted set), tpm (sorted set), tpm amounts (hash), month,
 * concurrency, reservation.
 * ARGV: rpmLimit, tpmLimit, monthLimit, concurrencyLimit, reserve, monthTtl, reservationTtl,
 * requestId, now (ms, the API's clock), window (ms).
 * Checks every limit first and changes nothing on refusal (but forgetting what left the
 * window); on success counts the request, reserves `reserve` tokens in the minute and the
 * month, takes a concurrency slot, and records the reservation so that settlement happens once.
 * Returns {refusedLimit or "", rpm, tpm, month, concurrency, retryMs, requestsResetMs,
 * tokensResetMs} after the call; retryMs is when the refused request would fit (rate limits).
 */
export const ADMIT_LUA = `${WINDOW_LUA}
local now = tonumber(ARGV[9])
local window = tonumber(ARGV[10])
forget(KEYS[1], nil, now - window)
forget(KEYS[2], KEYS[3], now - window)
local rpm = redis.call('ZCARD', KEYS[1])
local tpm = tonumber(redis.call('HGET', KEYS[3], '_total') or '0')
local month = tonumber(redis.call('GET', KEYS[4]) or '0')
local conc = tonumber(redis.call('GET', KEYS[5]) or '0')
local reserve = tonumber(ARGV[5])
local refused = ''
local retry = 0
if conc + 1 > tonumber(ARGV[4]) then refused = 'concurrency'
elseif rpm + 1 > tonumber(ARGV[1]) then
  refused = 'requests'
  retry = waitFor(KEYS[1], nil, rpm, 1, tonumber(ARGV[1]), now, window)
elseif tpm + reserve > tonumber(ARGV[2]) then
  refused = 'tokens'
  retry = waitFor(KEYS[2], KEYS[3], tpm, reserve, tonumber(ARGV[2]), now, window)
elseif month + reserve > tonumber(ARGV[3]) then refused = 'monthly_tokens'
end
if refused == '' then
  local id = ARGV[8]
  redis.call('ZADD', KEYS[1], now, id)
  redis.call('PEXPIRE', KEYS[1], 2 * window)
  rpm = rpm + 1
  redis.call('ZADD', KEYS[2], now, id)
  redis.call('HSET', KEYS[3], id, reserve)
  tpm = redis.call('HINCRBY', KEYS[3], '_total', reserve)
  redis.call('PEXPIRE', KEYS[2], 2 * window)
  redis.call('PEXPIRE', KEYS[3], 2 * window)
  month = redis.call('INCRBY', KEYS[4], reserve)
  redis.call('EXPIRE', KEYS[4], ARGV[6])
  conc = redis.call('INCR', KEYS[5])
  redis.call('HSET', KEYS[6], 'tpm', KEYS[3], 'id', id, 'month', KEYS[4], 'conc', KEYS[5], 'reserved', reserve)
  redis.call('EXPIRE', KEYS[6], ARGV[7])
end
return {refused, rpm, tpm, month, conc, retry,
  nextLeaves(KEYS[1], now, window), nextLeaves(KEYS[2], now, window)}
`;

/**
 * Settlement. KEYS: reservation. ARGV: actual tokens used.
 * Gives back the unused part of the reservation in the tokens-per-minute window (if the
 * request is still in it) and the month, frees the concurrency slot, and deletes the
 * reservation: a second call finds nothing and returns 0, so settling twice is harmless.
 */
export const SETTLE_LUA = `
local r = redis.call('HGETALL', KEYS[1])
if #r == 0 then return 0 end
local h = {}
for i = 1, #r, 2 do h[r[i]] = r[i + 1] end
local unused = tonumber(h['reserved']) - tonumber(ARGV[1])
-- (0 - unused, not -unused: Lua's -0 is "-0", which HINCRBY refuses)
local back = 0 - unused
-- A reservation without an id was made by the fixed-window admission, whose minute counter
-- nothing reads any more.
if h['id'] and redis.call('HEXISTS', h['tpm'], h['id']) == 1 then
  redis.call('HINCRBY', h['tpm'], h['id'], back)
  redis.call('HINCRBY', h['tpm'], '_total', back)
end
if redis.call('EXISTS', h['month']) == 1 then redis.call('DECRBY', h['month'], unused) end
if redis.call('DECR', h['conc']) < 0 then redis.call('SET', h['conc'], 0) end
redis.call('DEL', KEYS[1])
return 1
`;

/**
 * Reconciliation. KEYS: month, concurrency. ARGV: used (PostgreSQL), inFlight (PostgreSQL),
 * monthTtl, repairConcurrency (1/0).
 * The month counter is set only while Redis and PostgreSQL agree on the requests in flight:
 * between an admission and its row, or a settlement and its accounting, the counter holds a
 * reservation PostgreSQL cannot see yet, and overwriting it could let requests overshoot.
 * With repairConcurrency (a mismatch seen twice in a row: a leak, not a request in passing)
 * the concurrency count is set first. Returns 1 when the month counter was set.
 */
export const RECONCILE_LUA = `
local conc = tonumber(redis.call('GET', KEYS[2]) or '0')
if ARGV[4] == '1' and conc ~= tonumber(ARGV[2]) then
  redis.call('SET', KEYS[2], ARGV[2])
  conc = tonumber(ARGV[2])
end
if conc ~= tonumber(ARGV[2]) then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[3])
return 1
`;
