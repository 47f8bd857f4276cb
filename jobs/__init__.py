"""The job bodies: the send batch, the announcement, and the tick that enqueues the batches; with what
they share (runtime notices, the per-account lock). They run on the worker runtime (`worker/`), which
they use through the job context only. Nothing here imports aiogram: workers talk to the Bot API over
httpx."""
