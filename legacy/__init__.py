"""Taking over a running deployment of the older bot (`tgcast import-legacy`).

The older bot's database is foreign: its queries live in `legacy.source` alone and only ever read, in
one read-only snapshot. The conversions of its values (session strings, group ids, Markdown texts,
intervals, access) are pure functions in the modules beside it, and everything written into tgcast
goes through `db/` (docs/migrating.md).
"""
