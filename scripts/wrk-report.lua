-- wrk script for scripts/load-test.sh: counts responses by status and by the backend that
-- answered (the X-Backend header the example backends set; LOADTEST_BACKEND_HEADER names
-- another), then prints them as tables after wrk's own report, like scripts/loadgen.py.
--
-- Each wrk thread runs its own Lua state, so every thread counts into its own tables and
-- done() (in the main state) adds them up through thread:get().

local backend_header = string.lower(os.getenv("LOADTEST_BACKEND_HEADER") or "X-Backend")
local threads = {}

function setup(thread)
   table.insert(threads, thread)
end

function init(args)
   statuses, backends = {}, {}
end

-- Header names arrive as the server spelled them: compare them lower-cased.
local function header(headers, wanted)
   for name, value in pairs(headers) do
      if string.lower(name) == wanted then
         return value
      end
   end
   return "-"
end

function response(status, headers, body)
   local s = tostring(status)
   statuses[s] = (statuses[s] or 0) + 1
   local b = header(headers, backend_header)
   backends[b] = (backends[b] or 0) + 1
end

local function add(total, part)
   for key, n in pairs(part or {}) do
      total[key] = (total[key] or 0) + n
   end
end

local function print_table(title, counts, total)
   local keys = {}
   for key in pairs(counts) do
      table.insert(keys, key)
   end
   table.sort(keys)
   local width = string.len(title)
   for _, key in ipairs(keys) do
      width = math.max(width, string.len(key))
   end
   local row = "  %-" .. width .. "s  %9s  %6s"
   print(string.format(row, title, "count", "share"))
   print(string.format(row, string.rep("-", width), string.rep("-", 9), string.rep("-", 6)))
   for _, key in ipairs(keys) do
      print(string.format(row, key, counts[key], string.format("%.1f%%", 100 * counts[key] / total)))
   end
end

function done(summary, latency, requests)
   local statuses_total, backends_total = {}, {}
   for _, thread in ipairs(threads) do
      add(statuses_total, thread:get("statuses"))
      add(backends_total, thread:get("backends"))
   end
   local seconds = summary.duration / 1e6
   local e = summary.errors
   print("")
   print(string.format("Responses    %d in %.2f s = %.1f req/s", summary.requests, seconds,
                       summary.requests / seconds))
   print(string.format("Errors       connect %d, read %d, write %d, timeout %d", e.connect, e.read,
                       e.write, e.timeout))
   print(string.format("Latency      p50 %.2f ms   p90 %.2f ms   p99 %.2f ms   max %.2f ms",
                       latency:percentile(50) / 1000, latency:percentile(90) / 1000,
                       latency:percentile(99) / 1000, latency.max / 1000))
   if summary.requests > 0 then
      print("")
      print_table("status", statuses_total, summary.requests)
      print("")
      print_table("backend (" .. (os.getenv("LOADTEST_BACKEND_HEADER") or "X-Backend") .. ")",
                  backends_total, summary.requests)
   end
end
