"""The jobs of the Celery backend as Redis keeps them: one shared layout for the bot and the workers.

Every key starts with stylebot:q: (a Redis ACL can give the workers exactly
that; docs/scaling.md counts what each job costs):

    stylebot:q:job:<id>      hash: user_id chat_id op options output time_limit submitted,
                             status (queued running done failed cancelled), attempt, runs, worker, started
    stylebot:q:in:<id>       hash: the job's pictures by argument name ("styles:0", "styles:1" for a list)
    stylebot:q:out:<id>      the finished picture, until the bot has delivered it
    stylebot:q:lease:<id>    "<worker>:<attempt>", renewed every second while a worker runs the job
    stylebot:q:events        a stream: started, progress, done, failed; read by the bot's consumer group
    stylebot:q:worker:<name>:<n>   what each worker process says of itself, expiring when it stops saying it
    stylebot:q:workers       a sorted set of those keys by when they last spoke, so the bot never scans
    stylebot:q:broker:...    Celery's own (bot/jobs/celery_app.py)

`attempt` counts the job's messages: each message names the attempt it was
sent for, and a worker runs it only while that is still the job's attempt
and the job is queued; anything older or finished is dropped. `runs` counts
how often a worker started it, so a job that kills its worker every time is
given up after its second run. The state changes that decide who owns a job
(claim, renew, finish, send again) are Lua scripts, so each is atomic.
Every key has a time to live as a safety net; the happy path deletes them.
"""
from __future__ import annotations

PREFIX = "stylebot:q:"
EVENTS = PREFIX + "events"
EVENTS_GROUP = "bot"
EVENTS_MAXLEN = 10_000
WORKERS = PREFIX + "workers"
WORKER_TTL_S = 30            # a worker that stops saying it is there drops out of /stats within this
MAX_RUNS = 2                 # a job runs again once after its worker died; a second death is its end
LEASE_S = 10.0               # how long a job stays a worker's without word from it
RESULT_TTL_S = 6 * 3600      # a result waits this long for a bot that is down
JOB_TTL_S = 24 * 3600


def job_key(job_id: str) -> str:
    return f"{PREFIX}job:{job_id}"


def in_key(job_id: str) -> str:
    return f"{PREFIX}in:{job_id}"


def out_key(job_id: str) -> str:
    return f"{PREFIX}out:{job_id}"


def lease_key(job_id: str) -> str:
    return f"{PREFIX}lease:{job_id}"


def worker_key(name: str, index: int) -> str:
    return f"{PREFIX}worker:{name}:{index}"


def keys(job_id: str) -> list[str]:
    """Every key of a job but the stream's entries."""
    return [job_key(job_id), in_key(job_id), out_key(job_id), lease_key(job_id)]


def pictures_to_fields(images: dict[str, bytes | list[bytes]]) -> dict[str, bytes]:
    fields = {}
    for name, data in images.items():
        if isinstance(data, list):
            fields.update({f"{name}:{i}": part for i, part in enumerate(data)})
        else:
            fields[name] = data
    return fields


def pictures_from_fields(fields: dict) -> dict[str, bytes | list[bytes]]:
    images: dict[str, bytes | list[bytes]] = {}
    lists: dict[str, dict[int, bytes]] = {}
    for raw_name, data in fields.items():
        name = raw_name.decode() if isinstance(raw_name, bytes) else raw_name
        base, _, index = name.partition(":")
        if index:
            lists.setdefault(base, {})[int(index)] = data
        else:
            images[name] = data
    for base, parts in lists.items():
        images[base] = [parts[i] for i in sorted(parts)]
    return images


def text(value) -> str:
    return value.decode() if isinstance(value, bytes) else ("" if value is None else str(value))


# KEYS: job, lease, events. ARGV: job id, attempt, holder, lease ms, now, max runs, stream length.
# A job is taken only while queued for this attempt; a run past max runs fails it.
CLAIM = """
local s = redis.call('HMGET', KEYS[1], 'status', 'attempt', 'runs')
if not s[1] then return {'gone', 0} end
if s[1] ~= 'queued' or tonumber(s[2]) ~= tonumber(ARGV[2]) then return {'stale', 0} end
local runs = tonumber(s[3] or '0') + 1
if runs > tonumber(ARGV[6]) then
  redis.call('HSET', KEYS[1], 'status', 'failed', 'runs', runs)
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[7], '*', 'job', ARGV[1], 'kind', 'failed',
             'reason', 'worker_died')
  return {'poison', runs}
end
redis.call('HSET', KEYS[1], 'status', 'running', 'runs', runs, 'worker', ARGV[3], 'started', ARGV[5])
redis.call('SET', KEYS[2], ARGV[3] .. ':' .. ARGV[2], 'PX', ARGV[4])
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[7], '*', 'job', ARGV[1], 'kind', 'started',
           'worker', ARGV[3], 'runs', runs)
return {'claimed', runs}
"""

# KEYS: job, lease. ARGV: attempt, holder, lease ms. Returns the job's status; renews only a running job
# that is still this attempt's (cancelled, sent again elsewhere or gone: the worker stops).
RENEW = """
local s = redis.call('HMGET', KEYS[1], 'status', 'attempt')
if not s[1] then return 'gone' end
if tonumber(s[2]) ~= tonumber(ARGV[1]) then return 'moved' end
if s[1] == 'running' then
  redis.call('SET', KEYS[2], ARGV[2] .. ':' .. ARGV[1], 'PX', ARGV[3])
end
return s[1]
"""

# KEYS: job, lease, in, out, events. ARGV: job id, attempt, outcome (done, failed, cancelled),
# result or '', result ttl, stream length, then field/value pairs for the event. Only the job's
# current run may finish it; a job cancelled meanwhile loses its keys at once.
FINISH = """
local s = redis.call('HMGET', KEYS[1], 'status', 'attempt')
if not s[1] then redis.call('DEL', KEYS[3]); return 'gone' end
if tonumber(s[2]) ~= tonumber(ARGV[2]) then return 'moved' end
if s[1] == 'cancelled' or ARGV[3] == 'cancelled' then
  redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4])
  return 'cancelled'
end
if s[1] ~= 'running' then return s[1] end
redis.call('DEL', KEYS[2], KEYS[3])
if ARGV[3] == 'done' then
  redis.call('SET', KEYS[4], ARGV[4], 'EX', ARGV[5])
end
redis.call('HSET', KEYS[1], 'status', ARGV[3])
local event = {'job', ARGV[1], 'kind', ARGV[3]}
for i = 7, #ARGV do table.insert(event, ARGV[i]) end
redis.call('XADD', KEYS[5], 'MAXLEN', '~', ARGV[6], '*', unpack(event))
return ARGV[3]
"""

# KEYS: job, lease. ARGV: the attempt the bot saw running, max runs. Sends a job whose worker went
# silent back to the queue (the caller then sends its message); after max runs it says give_up, and
# the caller fails the job through FINISH, so that the failure goes through the stream.
REQUEUE = """
local s = redis.call('HMGET', KEYS[1], 'status', 'attempt', 'runs')
if not s[1] then return {'gone', 0} end
if s[1] ~= 'running' or tonumber(s[2]) ~= tonumber(ARGV[1]) then return {'changed', 0} end
if redis.call('EXISTS', KEYS[2]) == 1 then return {'alive', 0} end
if tonumber(s[3] or '0') >= tonumber(ARGV[2]) then return {'give_up', 0} end
local attempt = tonumber(s[2]) + 1
redis.call('HSET', KEYS[1], 'status', 'queued', 'attempt', attempt, 'worker', '')
return {'again', attempt}
"""
