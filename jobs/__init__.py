"""RQ jobs and the worker process. Nothing here imports aiogram: workers talk to the Bot API over httpx."""
