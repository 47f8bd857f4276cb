"""What one open, authorised Telethon client costs a worker process: RSS per connection, CPU to open
one, and the CPU of idle connections (Telethon's keep-alive pings), against a real MTProto server on
loopback. Not part of `make bench`: it needs such a server, which is no dependency of ours.

Method (docs/benchmarks.md, "The cost of an open connection"): accounts are signed up once on the
server (login codes read from its database) and their sessions kept in a file; then, for each count,
a fresh process imports Telethon, reads its RSS, opens that many clients as the worker does
(StringSession, receive_updates=False, connect + one authorised request), reads RSS and CPU, leaves them idle
for a while and reads CPU again. Every count runs in its own process, so memory freed by one does not
flatter the next.

    python -m bench.connection_cost --server 127.0.0.1:4430 --pubkey data/secrets/pubkey.asc \\
        --codes-db data/secrets/piltover.db --counts 100,1000 --idle 120
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

API_ID, API_HASH = 4, "014b35b6184100b085b7d0ff59dfb3d3"  # any pair: the server does not check it
PHONE_BASE = 99966_000000


def _rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _cpu_s() -> float:
    t = os.times()
    return t.user + t.system


def _client(session: str, host: str, port: int, pubkey: str):
    from telethon import TelegramClient
    from telethon.crypto import rsa
    from telethon.sessions import StringSession

    try:
        rsa.add_key(pubkey, old=False)
    except TypeError:  # Telethon before 1.25 has no `old`
        rsa.add_key(pubkey)
    s = StringSession(session)
    if not session:
        s.set_dc(2, host, port)
    return TelegramClient(s, API_ID, API_HASH, receive_updates=False, request_retries=0,
                          connection_retries=0, auto_reconnect=False)


async def _sign_up(n: int, host: str, port: int, pubkey: str, codes_db: str) -> str:
    client = _client("", host, port, pubkey)
    await client.connect()
    phone = f"+{PHONE_BASE + n}"
    sent = await client.send_code_request(phone)
    with sqlite3.connect(codes_db) as db:
        row = db.execute("SELECT code FROM sentcode WHERE phone_number = ? ORDER BY id DESC LIMIT 1",
                         (phone.lstrip("+"),)).fetchone()
    code = str(row[0]).zfill(5)
    from telethon.errors import TypeNotFoundError
    from telethon.tl import functions, types

    try:
        result = await client(functions.auth.SignInRequest(phone, sent.phone_code_hash, code))
        if isinstance(result, types.auth.AuthorizationSignUpRequired):
            # Telethon's sign_up refuses (Telegram's rule for third-party apps); the raw request is the same.
            await client(functions.auth.SignUpRequest(phone, sent.phone_code_hash, f"Cost {n}", ""))
    except TypeNotFoundError:
        # A server of an older layer than this Telethon answers with a User it cannot read; the session
        # is authorised all the same (the check below asks for something every layer reads alike).
        pass
    await client(functions.updates.GetStateRequest())
    session = client.session.save()
    await client.disconnect()
    return str(session)


def sessions(path: Path, count: int, host: str, port: int, pubkey: str, codes_db: str) -> list[str]:
    have: list[str] = json.loads(path.read_text()) if path.exists() else []

    async def more() -> None:
        n = len(have)
        while len(have) < count:
            try:
                have.append(await asyncio.wait_for(_sign_up(n, host, port, pubkey, codes_db), 30))
            except (TimeoutError, ConnectionError) as exc:  # the server dropped a request: next phone
                print(f"sign-up {n}: {type(exc).__name__}", file=sys.stderr, flush=True)
            n += 1
            if len(have) % 50 == 0:
                path.write_text(json.dumps(have))  # noqa: ASYNC240  (a few bytes, now and then)
                print(f"signed up {len(have)}", file=sys.stderr, flush=True)

    if len(have) < count:
        asyncio.run(more())
        path.write_text(json.dumps(have))
    return have[:count]


async def _measure(strings: list[str], host: str, port: int, pubkey: str, idle_s: float) -> dict[str, float]:
    # Imported before the baseline, as in a worker.
    from telethon.errors import TypeNotFoundError
    from telethon.tl.functions.updates import GetStateRequest

    unreadable: list[int] = []
    failed: list[str] = []

    base_rss = _rss_kib()
    cpu0 = _cpu_s()
    clients = [_client(s, host, port, pubkey) for s in strings]
    opened = time.monotonic()
    sem = asyncio.Semaphore(50)

    async def open_one(c) -> None:
        async with sem:
            # connect (Telethon 1.4x asks for get_me in it) and one authorised request, as a batch's
            # first send would be. A Telethon of a newer layer than the server's may fail to read an
            # answer (a User); the connection is open and authorised all the same, which is what is
            # measured (counted in `unreadable_answers`).
            try:
                await c.connect()
                await c(GetStateRequest())
            except TypeNotFoundError:
                unreadable.append(1)
                # connect() stopped at its get_me, before starting the loops it starts last: start
                # them as it would have, or the idle figures would miss the keep-alive pings.
                if getattr(c, "_keepalive_handle", None) is None:
                    c._updates_handle = asyncio.get_running_loop().create_task(c._update_loop())
                    c._keepalive_handle = asyncio.get_running_loop().create_task(c._keepalive_loop())
            except (OSError, ConnectionError, RuntimeError, ValueError) as exc:
                # The server under test drops a key exchange now and then: counted, not measured.
                failed.append(type(exc).__name__)

    await asyncio.gather(*(open_one(c) for c in clients))
    open_wall = time.monotonic() - opened
    cpu1 = _cpu_s()
    await asyncio.sleep(5)
    open_rss = _rss_kib()
    cpu2 = _cpu_s()
    await asyncio.sleep(idle_s)
    cpu3 = _cpu_s()
    idle_rss = _rss_kib()
    connected = sum(c.is_connected() for c in clients)
    await asyncio.gather(*(c.disconnect() for c in clients), return_exceptions=True)
    n = connected
    return {
        "count": len(clients), "failed_to_open": len(failed), "connected_after_idle": connected,
        "unreadable_answers": len(unreadable),
        "base_rss_mib": base_rss / 1024,
        "open_rss_mib": open_rss / 1024, "idle_rss_mib": idle_rss / 1024,
        "rss_per_connection_kib": (idle_rss - base_rss) / n,
        "cpu_ms_to_open_each": 1000 * (cpu1 - cpu0) / n, "open_wall_s": open_wall,
        "idle_s": idle_s, "idle_cpu_percent_of_a_core": 100 * (cpu3 - cpu2) / idle_s,
        "idle_cpu_ms_per_connection_per_minute": 1000 * (cpu3 - cpu2) / n * 60 / idle_s,
    }


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--server", default="127.0.0.1:4430")
    p.add_argument("--pubkey", required=True, help="the server's RSA public key (PEM)")
    p.add_argument("--codes-db", required=True, help="the server's SQLite database (login codes)")
    p.add_argument("--sessions", default="artifacts/bench/connection-cost-sessions.json")
    p.add_argument("--counts", default="100,1000")
    p.add_argument("--accounts", type=int, default=1000, help="accounts to sign up at most")
    p.add_argument("--idle", type=float, default=120.0, help="seconds left idle (Telethon pings every 60 s)")
    p.add_argument("--child", type=int, default=0, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    host, _, port = a.server.partition(":")
    pubkey = Path(a.pubkey).read_text()
    path = Path(a.sessions)
    path.parent.mkdir(parents=True, exist_ok=True)
    if a.child:
        # More connections than signed-up accounts reuse sessions: each client still has its own
        # MTProto session (its own session id, sequence numbers and socket) on the shared key, so
        # what it costs the client process is the same; --accounts bounds the sign-ups.
        have = json.loads(path.read_text())
        strings = (have * (a.child // len(have) + 1))[: a.child]
        print(json.dumps(asyncio.run(_measure(strings, host, int(port), pubkey, a.idle))))
        return 0
    counts = [int(c) for c in a.counts.split(",")]
    sessions(path, min(max(counts), a.accounts), host, int(port), pubkey, a.codes_db)
    import telethon

    for count in counts:
        done = subprocess.run([sys.executable, "-m", "bench.connection_cost", *argv, "--child", str(count)],
                              capture_output=True, text=True, check=True)
        result = json.loads(done.stdout.strip().splitlines()[-1])
        result["telethon"] = telethon.__version__
        print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
