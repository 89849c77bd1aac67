-- wrk script: POST one image to /v1/scan; counts answers by status across threads.
local path = os.getenv("FACADE_LOAD_IMAGE") or "examples/astronaut-400.jpg"
local file = assert(io.open(path, "rb"))
local body = file:read("*a")
file:close()

wrk.method = "POST"
wrk.body = body
wrk.headers["Content-Type"] = "application/octet-stream"
local token = os.getenv("FACADE_API_TOKEN")
if token and token ~= "" then wrk.headers["Authorization"] = "Bearer " .. token end

local threads = {}
function setup(thread) table.insert(threads, thread) end
function init() ok, busy, other = 0, 0, 0 end
function response(status)
  if status == 200 then ok = ok + 1 elseif status == 503 then busy = busy + 1 else other = other + 1 end
end
function done(summary, latency)
  local o, b, x = 0, 0, 0
  for _, t in ipairs(threads) do o = o + t:get("ok"); b = b + t:get("busy"); x = x + t:get("other") end
  io.write(string.format("answers: 200=%d 503=%d other=%d; socket errors: connect %d read %d write %d timeout %d\n",
    o, b, x, summary.errors.connect, summary.errors.read, summary.errors.write, summary.errors.timeout))
  io.write(string.format("requests/s %.1f  p50 %.1f ms  p99 %.1f ms\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
