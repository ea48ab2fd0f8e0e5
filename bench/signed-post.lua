-- wrk script for bench/run: the same correctly signed POST, over and over.
--
--   wrk -tT -cC ... -s signed-post.lua URL -- PATH BODY_FILE SIGNATURE SECONDS LIMIT C/T DONE_FILE
--
-- The signature is computed by bench/run (Python's hmac), never here. Each
-- thread sends for SECONDS (or until it has sent LIMIT requests, 0: no limit);
-- after that each connection, once its last delivery is answered, asks for
-- /drain with a body it never sends, so it parks there. When all C/T
-- connections of a thread are parked the thread stops and appends a byte to
-- DONE_FILE; the last thread to do so interrupts wrk (SIGINT, which ends its
-- wait for -d). So every delivery sent has been answered and counted, nothing
-- is left in flight when wrk exits, and -d only bounds the whole.
-- done() prints one line to parse.

local ffi = require("ffi")
ffi.cdef [[
    typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
    int clock_gettime(int clock, bench_timespec *now);
    int getpid(void);
    int kill(int pid, int signal);
]]
local clock = ffi.new("bench_timespec")
local function now()
    ffi.C.clock_gettime(1, clock) -- CLOCK_MONOTONIC
    return tonumber(clock.tv_sec) + tonumber(clock.tv_nsec) * 1e-9
end

local threads = {}
function setup(thread)
    table.insert(threads, thread)
end

local delivery, park, deadline, limit, connections, done_file, thread_count
local parked = 0
sent = 0 -- read by done() through thread:get
started, stopped = 0, 0

function init(args)
    local path, body_file, signature = args[1], args[2], args[3]
    local file = assert(io.open(body_file, "rb"))
    local body = file:read("*a")
    file:close()
    delivery = wrk.format("POST", path, {
        ["Host"] = "bench",
        ["Content-Type"] = "application/json",
        ["X-Signature"] = signature,
    }, body)
    park = "POST /drain HTTP/1.1\r\nHost: bench\r\nContent-Length: 1\r\n\r\n"
    started = now()
    deadline = started + tonumber(args[4])
    limit = tonumber(args[5])
    connections = tonumber(args[6])
    done_file = args[7]
    thread_count = tonumber(args[8])
end

local function finish()
    wrk.thread:stop()
    local file = assert(io.open(done_file, "a"))
    file:write("x")
    file:flush()
    local finished = file:seek("end")
    file:close()
    if finished >= thread_count then
        ffi.C.kill(ffi.C.getpid(), 2)
    end
end

function request()
    if stopped == 0 then
        if now() < deadline and (limit == 0 or sent < limit) then
            sent = sent + 1
            return delivery
        end
        stopped = now()
    end
    parked = parked + 1
    if parked == connections then
        finish()
    end
    return park
end

function done(summary, latency, requests)
    -- wrk calls request() once more on its first thread to check the request
    -- it returns (script_verify_request): that one was never sent.
    local total_sent, first, last = -1, math.huge, 0
    for _, thread in ipairs(threads) do
        total_sent = total_sent + thread:get("sent")
        first = math.min(first, thread:get("started"))
        local stop = thread:get("stopped")
        last = math.max(last, stop > 0 and stop or now())
    end
    local e = summary.errors
    io.write(string.format(
        "BENCH answered=%d non2xx=%d sent=%d seconds=%.6f p50_us=%d p99_us=%d "
            .. "connect_errors=%d read_errors=%d write_errors=%d timeouts=%d\n",
        summary.requests, e.status, total_sent, last - first,
        latency:percentile(50), latency:percentile(99),
        e.connect, e.read, e.write, e.timeout))
end
