"""The worker runtime: tgcast's extension of RQ, and the process that runs the jobs.

- `context.py`: the job context (settings, pools, clients, the account connections) on the process's
  job loop, and `loop_job`, which makes an async body taking the context an RQ job function;
- `loop_worker.py`: an RQ worker running many jobs at once as tasks on that loop;
- `process.py`: the worker process (`tgcast worker`): its queues, slots, routing and shutdown;
- `scheduler.py`: RQ's scheduler as a thread of that process, polling five times a second;
- `own_queues.py`: each worker's queue of its own, where an account's batches are routed, and the
  hand-over of a gone worker's queue;
- `queues.py`: the queue names, enqueuing the send and announcement jobs, and the recovery's reads of
  what RQ holds;
- `botapi.py`, `sent_records.py`: the Bot API client and the group commit of "sent" records the
  context holds.

Job bodies live in `jobs/`, one layer up, and use only the job context, the queues and the Bot API
client from here (tests/test_import_direction.py); the runtime finds them by the dotted names jobs are
enqueued under, never by importing them. Everything here that depends on RQ's private behaviour is
listed in docs/worker.md, "What it relies on in RQ", and checked by tests/test_rq_upgrade.py. Nothing
here imports aiogram: workers talk to the Bot API over httpx.
"""
