"""The worker's server-side scripts on the jobs stream (Lua, run atomically by Redis)."""

# KEYS: jobs stream. ARGV: group, consumer, the job ids this worker runs. Refreshes
# (XCLAIM ... JUSTID resets the idle time) those still pending for this consumer and
# returns the others: another worker took them over. On the server, in one call: with
# thousands of jobs, fetching and parsing the pending list every second stalled the
# worker's event loop for tens of milliseconds.
HEARTBEAT = """
local ours = {}
local pending = redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', #ARGV + 100, ARGV[2])
for _, p in ipairs(pending) do ours[p[1]] = true end
local keep, lost = {}, {}
for i = 3, #ARGV do
  if ours[ARGV[i]] then keep[#keep + 1] = ARGV[i] else lost[#lost + 1] = ARGV[i] end
end
for i = 1, #keep, 1000 do
  local args = {'XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0}
  for j = i, math.min(i + 999, #keep) do args[#args + 1] = keep[j] end
  args[#args + 1] = 'JUSTID'
  redis.call(unpack(args))
end
return lost
"""

# KEYS: jobs stream. ARGV: group. Trims the jobs every worker of the group has finished:
# entries are delivered in order, so every entry below the oldest pending one (or, with
# none pending, the last delivered one) was delivered and acked. Exact, not "~": a jobs
# stream is short, and MINID ~ would keep whole 100-entry nodes of finished jobs.
TRIM_DONE = """
local last = nil
for _, g in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
  local name, id
  for i = 1, #g, 2 do
    if g[i] == 'name' then name = g[i + 1] elseif g[i] == 'last-delivered-id' then id = g[i + 1] end
  end
  if name == ARGV[1] then last = id end
end
if not last then return 0 end
local p = redis.call('XPENDING', KEYS[1], ARGV[1])
local minid = last
if p[1] > 0 then minid = p[2] end
return redis.call('XTRIM', KEYS[1], 'MINID', minid)
"""
