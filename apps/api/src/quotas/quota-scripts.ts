// Lua run atomically by Redis, so every API replica sees one consistent set of counters and
// concurrent admissions cannot overshoot a limit.

/**
 * Admission. KEYS: rpm, tpm, month, concurrency, reservation.
 * ARGV: rpmLimit, tpmLimit, monthLimit, concurrencyLimit, reserve, minuteTtl, monthTtl, reservationTtl.
 * Checks every limit first and changes nothing on refusal; on success counts the request,
 * reserves `reserve` tokens in the minute and the month, takes a concurrency slot, and
 * records the reservation so that settlement happens once.
 * Returns {refusedLimit or "", rpm, tpm, month, concurrency} after the call.
 */
export const ADMIT_LUA = `
local rpm = tonumber(redis.call('GET', KEYS[1]) or '0')
local tpm = tonumber(redis.call('GET', KEYS[2]) or '0')
local month = tonumber(redis.call('GET', KEYS[3]) or '0')
local conc = tonumber(redis.call('GET', KEYS[4]) or '0')
local reserve = tonumber(ARGV[5])
local refused = ''
if conc + 1 > tonumber(ARGV[4]) then refused = 'concurrency'
elseif rpm + 1 > tonumber(ARGV[1]) then refused = 'requests'
elseif tpm + reserve > tonumber(ARGV[2]) then refused = 'tokens'
elseif month + reserve > tonumber(ARGV[3]) then refused = 'monthly_tokens'
end
if refused == '' then
  rpm = redis.call('INCR', KEYS[1])
  redis.call('EXPIRE', KEYS[1], ARGV[6])
  tpm = redis.call('INCRBY', KEYS[2], reserve)
  redis.call('EXPIRE', KEYS[2], ARGV[6])
  month = redis.call('INCRBY', KEYS[3], reserve)
  redis.call('EXPIRE', KEYS[3], ARGV[7])
  conc = redis.call('INCR', KEYS[4])
  redis.call('HSET', KEYS[5], 'tpm', KEYS[2], 'month', KEYS[3], 'conc', KEYS[4], 'reserved', reserve)
  redis.call('EXPIRE', KEYS[5], ARGV[8])
end
return {refused, rpm, tpm, month, conc}
`;

/**
 * Settlement. KEYS: reservation. ARGV: actual tokens used.
 * Gives back the unused part of the reservation in the admission minute (if that window is
 * still open) and the month, frees the concurrency slot, and deletes the reservation: a
 * second call finds nothing and returns 0, so settling twice is harmless.
 */
export const SETTLE_LUA = `
local r = redis.call('HGETALL', KEYS[1])
if #r == 0 then return 0 end
local h = {}
for i = 1, #r, 2 do h[r[i]] = r[i + 1] end
local unused = tonumber(h['reserved']) - tonumber(ARGV[1])
if redis.call('EXISTS', h['tpm']) == 1 then redis.call('DECRBY', h['tpm'], unused) end
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
