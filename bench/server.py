"""Benchmarks of the signaling server, run in its own process against a load generator here.

Four measurements, each against a fresh server (``bench.serverproc``) on a
fresh database in a temporary directory, all traffic on 127.0.0.1:

* **connections held**: 5,000 users logged in at once (goal), with the
  server's resident memory under 1 GiB (goal); a sample of 100 connections
  must still answer ``contacts.list``. The users and their session tokens
  are written to the database before the server starts (registering through
  the protocol would cost an Argon2 hash each), then each connection logs in
  with ``login {token}``.
* **call.invite → call.incoming latency** at a steady 500 invites/s, each with
  a ``call.cancel``, under two workloads (250 pairs; 5,000 idle connections and
  100 pairs), each beside a bare websockets relay in the same run
  (:mod:`bench.invites`). Goal: p99 under 20 ms, and within 2x of the relay.
* **presence fan-out**: one user with 100 accepted contacts, all logged in,
  alternates ``presence.set`` between away and online; the time from the
  send until the last of the 100 has its ``presence`` event.
* **password logins** with the server's real Argon2 parameters: latency of
  one client logging in alone (goal: under 100 ms), and logins per second
  with several clients logging in and out at once.

The load generator and the server share the machine (2 cores on the reference
machine), so latencies include some competition for the CPU; these figures are
measurements, not pass/fail tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import secrets
import sys
import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import argon2
from websockets.exceptions import InvalidHandshake

from bench import Figure, Goal, PartialFailure, percentile
from bench.client import BenchClient, EventHandler, Message, RequestFailed
from bench.serverproc import ServerProcess, raise_open_files_limit
from signaling.protocol.constants import TOKEN_LIFETIME_S
from signaling.server.config import ServerConfig
from signaling.server.credentials import HashParameters, new_token, token_hash
from signaling.server.store import SQLiteStore, store_for

BENCH = "server"
TARGET_CONNECTIONS = 5_000
RSS_BUDGET_MIB = 1024
LOGIN_GOAL_MS = 100.0
FANOUT_CONTACTS = 100


def _progress(text: str) -> None:
    print(f"[server] {text}", file=sys.stderr, flush=True)


# Seeding ---------------------------------------------------------------------


_HASH_CACHE: dict[HashParameters, str] = {}


def _precomputed_hash(params: HashParameters) -> str:
    """One real Argon2id hash (of a random password nobody uses), shared by seeded users."""
    if params not in _HASH_CACHE:
        hasher = argon2.PasswordHasher(
            time_cost=params.time_cost,
            memory_cost=params.memory_kib,
            parallelism=params.parallelism,
            type=argon2.Type.ID,
        )
        _HASH_CACHE[params] = hasher.hash(secrets.token_hex(16))
    return _HASH_CACHE[params]


async def seed(
    db_path: Path | str,
    usernames: Sequence[str],
    contacts: Sequence[tuple[str, str]] = (),
    concurrency: int = 1,
) -> dict[str, str]:
    """Create users (each with a session token) and accepted contacts, before the server runs.

    Goes through the server's own store (SQLite, or PostgreSQL for a ``postgresql://``
    ``db_path``), so the rows are exactly what the server would have written; ``concurrency``
    users at a time (a PostgreSQL round trip is the cost there). Returns each username's token.
    """
    password_hash = _precomputed_hash(ServerConfig().hash_parameters)
    expires = time.time() + TOKEN_LIFETIME_S
    tokens: dict[str, str] = {}
    store = store_for(db_path)
    await store.open()

    async def user(name: str) -> None:
        await store.create_user(name, name, password_hash)
        token = new_token()
        await store.add_token(token_hash(token), name, expires)
        tokens[name] = token

    async def pair(asker: str, accepter: str) -> None:
        await store.request_contact(asker, accepter)
        if not await store.accept_contact(accepter, asker):
            raise RuntimeError(f"could not seed contacts {asker} and {accepter}")

    try:
        for start in range(0, len(usernames), concurrency):
            await asyncio.gather(*(user(n) for n in usernames[start : start + concurrency]))
        for start in range(0, len(contacts), concurrency):
            await asyncio.gather(*(pair(a, b) for a, b in contacts[start : start + concurrency]))
    finally:
        await store.close()
    return tokens


# Connections -----------------------------------------------------------------


@dataclass(slots=True)
class Opened:
    """Connections that logged in, and what went wrong with the others."""

    clients: list[BenchClient] = field(default_factory=list)
    failures: int = 0
    first_error: str = ""
    #: Logins tried again after an ``unavailable`` reply (see ``open_logged_in``'s ``retries``).
    retried: int = 0


async def open_logged_in(
    url: str,
    tokens: Sequence[str],
    *,
    on_event: EventHandler | None = None,
    concurrency: int = 50,
    time_limit: float = 120.0,
    retries: int = 0,
) -> Opened:
    """Open one connection per token and log each in, ``concurrency`` at a time.

    Gives up on what is not done after ``time_limit`` seconds. The clients come
    back in the order of ``tokens`` (minus failures). A login answered ``unavailable``
    (the server could not use its database in time), or a connection the server did not
    take (its handshake timed out under the burst), is tried again on a new connection up
    to ``retries`` times, a growing pause apart, as a client would; counted in ``retried``.
    """
    gate = asyncio.Semaphore(concurrency)
    results: list[BenchClient | None] = [None] * len(tokens)
    opened = Opened()

    async def one(index: int, token: str) -> None:
        async with gate:
            client: BenchClient | None = None
            try:
                for attempt in range(retries + 1):
                    try:
                        client = await BenchClient.open(url, on_event)
                        await client.login_token(token)
                        break
                    except (RequestFailed, OSError, InvalidHandshake) as exc:
                        code = exc.reply.get("code") if isinstance(exc, RequestFailed) else None
                        if attempt == retries or code not in (None, "unavailable"):
                            raise
                        # On a new connection, as a client does (the refused login may have
                        # left this one logged in: "already logged in").
                        if client is not None:
                            client.abort()
                            client = None
                        opened.retried += 1
                        await asyncio.sleep(1.0 + attempt)
                results[index] = client
            except Exception as exc:
                opened.failures += 1
                opened.first_error = opened.first_error or repr(exc)
                if client is not None:
                    client.abort()

    tasks = [asyncio.create_task(one(i, t)) for i, t in enumerate(tokens)]
    _, late = await asyncio.wait(tasks, timeout=time_limit)
    for task in late:
        task.cancel()
    if late:
        await asyncio.wait(late, timeout=10)
        opened.failures += len(late)
        opened.first_error = opened.first_error or f"not done within {time_limit:.0f} s"
    opened.clients = [c for c in results if c is not None]
    return opened


def abort_all(clients: Sequence[BenchClient]) -> None:
    """Drop every connection at once (the server process is stopped right after)."""
    for client in clients:
        client.abort()


async def _answers(client: BenchClient) -> bool:
    try:
        await client.request("contacts.list", timeout=10)
    except Exception:
        return False
    return True


# (a) Connections held ----------------------------------------------------------


async def connections_held(workdir: Path, count: int) -> list[Figure]:
    """Log ``count`` users in at once and report what the server holds and what it costs."""
    names = [f"conn{i:05d}" for i in range(count)]
    _progress(f"connections: seeding {count} users")
    tokens = await seed(workdir / "conns.db", names)
    opened = Opened()
    async with ServerProcess(workdir / "conns.db", workdir / "conns.log") as server:
        try:
            await asyncio.sleep(0.5)
            baseline_kib = server.rss_kib()
            _progress(f"connections: opening {count} connections (server RSS {baseline_kib} KiB)")
            started = time.perf_counter()
            opened = await open_logged_in(
                server.url, [tokens[n] for n in names], concurrency=64, time_limit=150
            )
            elapsed = time.perf_counter() - started
            await asyncio.sleep(1.0)  # let the server finish the logins' follow-up work
            held_kib = server.rss_kib()
            metrics = await server.metrics()
            sample = random.Random(7).sample(opened.clients, min(100, len(opened.clients)))
            answered = sum(await asyncio.gather(*(_answers(c) for c in sample)))
            _progress(
                f"connections: {len(opened.clients)} held in {elapsed:.1f} s, "
                f"{opened.failures} failed {opened.first_error}"
            )
        finally:
            abort_all(opened.clients)
    held = len(opened.clients)
    per_conn = (held_kib - baseline_kib) / held if held else float("nan")
    return [
        Figure(BENCH, "connections held (logged in)", held, "connections",
               Goal.at_least(TARGET_CONNECTIONS)),
        Figure(BENCH, "logged-in users per server /metrics",
               metrics.get("parley_logged_in_users", float("nan")), "users"),
        Figure(BENCH, "connections failed", opened.failures, "connections", Goal.at_most(0)),
        Figure(BENCH, "server RSS, idle", baseline_kib / 1024, "MiB"),
        Figure(BENCH, f"server RSS with {held} connections", held_kib / 1024, "MiB",
               Goal.below(RSS_BUDGET_MIB)),
        Figure(BENCH, "server RSS per connection", per_conn, "KiB",
               Goal.at_most(RSS_BUDGET_MIB * 1024 / TARGET_CONNECTIONS)),
        Figure(BENCH, "sampled connections answering contacts.list", answered,
               f"of {len(sample)}", Goal.at_least(len(sample))),
        Figure(BENCH, "connect + token login rate", held / elapsed if elapsed else 0.0,
               "logins/s"),
    ]  # fmt: skip


# (c) Presence fan-out --------------------------------------------------------------


@dataclass(slots=True)
class _FanoutRound:
    """Which contacts still wait for the current round's ``presence`` event."""

    username: str
    status: str = ""
    waiting: set[str] = field(default_factory=set)
    done: asyncio.Future[float] | None = None

    def on_event(self, client: BenchClient, message: Message, received: float) -> None:
        """Count a contact's ``presence`` event for this round; the last one ends the round."""
        if (
            message.get("type") == "presence"
            and message.get("username") == self.username
            and message.get("presence") == self.status
            and client.username in self.waiting
        ):
            self.waiting.discard(client.username)
            if not self.waiting and self.done is not None and not self.done.done():
                self.done.set_result(received)


async def presence_fanout(workdir: Path, contacts: int, repeats: int) -> list[Figure]:
    """Time ``presence.set`` until all ``contacts`` accepted contacts have the event."""
    star = "star"
    names = [f"friend{i:04d}" for i in range(contacts)]
    _progress(f"presence: seeding 1 user with {contacts} contacts")
    tokens = await seed(workdir / "presence.db", [star, *names], [(star, n) for n in names])
    state = _FanoutRound(star)
    clients: list[BenchClient] = []
    times_ms: list[float] = []
    timeouts = 0
    async with ServerProcess(workdir / "presence.db", workdir / "presence.log") as server:
        try:
            first = await open_logged_in(server.url, [tokens[star]])
            clients += first.clients
            friends = await open_logged_in(
                server.url, [tokens[n] for n in names], on_event=state.on_event
            )
            clients += friends.clients
            if first.failures or friends.failures:
                raise RuntimeError(
                    f"could not log the users in: {first.first_error or friends.first_error}"
                )
            await asyncio.sleep(0.3)  # the star hears each friend come online; let that pass
            star_client = first.clients[0]
            _progress(f"presence: {repeats} rounds")
            for round_number in range(repeats):
                loop = asyncio.get_running_loop()
                state.status = "away" if round_number % 2 == 0 else "online"
                state.waiting = set(names)
                state.done = loop.create_future()
                sent = time.perf_counter()
                await star_client.request("presence.set", status=state.status)
                try:
                    last = await asyncio.wait_for(state.done, 10)
                except TimeoutError:
                    timeouts += 1
                    continue
                times_ms.append((last - sent) * 1000)
                await asyncio.sleep(0.01)
        finally:
            abort_all(clients)
    label = f"presence fan-out to {contacts} contacts"
    return [
        Figure(BENCH, f"{label} p50", percentile(times_ms, 50), "ms"),
        Figure(BENCH, f"{label} p99", percentile(times_ms, 99), "ms"),
        Figure(BENCH, f"{label} rounds complete", len(times_ms), f"of {repeats}",
               Goal.at_least(repeats)),
    ]  # fmt: skip


# (d) Password logins -----------------------------------------------------------------


async def _login_loop(
    client: BenchClient, username: str, password: str, deadline: float, latencies: list[float]
) -> None:
    """Log in and out until ``deadline``, recording each login's latency in ms."""
    for _ in range(100_000):
        if time.perf_counter() >= deadline:
            return
        started = time.perf_counter()
        await client.login_password(username, password)
        latencies.append((time.perf_counter() - started) * 1000)
        await client.request("logout")


async def password_logins(workdir: Path, clients_count: int, seconds: float) -> list[Figure]:
    """Login latency alone and login throughput with ``clients_count`` clients at once."""
    db = workdir / "logins.db"
    names = [f"login{i:02d}" for i in range(clients_count)]
    passwords = {n: secrets.token_urlsafe(12) for n in names}
    clients: list[BenchClient] = []
    alone: list[float] = []
    together: list[float] = []
    async with ServerProcess(db, workdir / "logins.log") as server:
        try:
            _progress(f"logins: registering {clients_count} users through the protocol")
            for name in names:
                client = await BenchClient.open(server.url)
                clients.append(client)
                await client.request("register", 30, username=name, password=passwords[name])
                await client.request("logout")
            first = names[0]
            _progress(f"logins: 1 client for {seconds / 2:.1f} s")
            await _login_loop(
                clients[0], first, passwords[first], time.perf_counter() + seconds / 2, alone
            )
            _progress(f"logins: {clients_count} clients for {seconds:.1f} s")
            started = time.perf_counter()
            deadline = started + seconds
            await asyncio.wait_for(
                asyncio.gather(
                    *(
                        _login_loop(c, n, passwords[n], deadline, together)
                        for c, n in zip(clients, names, strict=True)
                    )
                ),
                seconds + 30,
            )
            elapsed = time.perf_counter() - started
        finally:
            abort_all(clients)
    params = await _stored_hash_parameters(db, names[0])
    return [
        Figure(BENCH, "password login latency p50, 1 client", percentile(alone, 50), "ms",
               Goal.below(LOGIN_GOAL_MS)),
        Figure(BENCH, f"password logins/s, {clients_count} clients", len(together) / elapsed,
               "logins/s"),
        Figure(BENCH, f"password login latency p50, {clients_count} clients",
               percentile(together, 50), "ms"),
        Figure(BENCH, "argon2id time cost", params.time_cost, "iterations"),
        Figure(BENCH, "argon2id memory", params.memory_cost, "KiB"),
        Figure(BENCH, "argon2id parallelism", params.parallelism, "lanes"),
    ]  # fmt: skip


async def _stored_hash_parameters(db_path: Path, username: str) -> argon2.Parameters:
    """The Argon2 parameters of the hash the server stored for ``username``."""
    store = SQLiteStore(db_path)
    await store.open()
    try:
        user = await store.get_user(username)
    finally:
        await store.close()
    if user is None or user.password_hash is None:
        raise RuntimeError(f"the server stored no password hash for {username}")
    return argon2.extract_parameters(user.password_hash)


# The benchmark ---------------------------------------------------------------------


Part = tuple[str, Callable[[Path], Awaitable[list[Figure]]]]


def _invite_workloads(quick: bool) -> list[Any]:
    from bench.invites import workloads  # it imports this module

    return list(workloads(quick))


async def _invites(workload: Any, workdir: Path, rounds: int) -> list[Figure]:
    from bench.invites import compare

    return await compare(workload, workdir, rounds)


def parts(quick: bool) -> list[Part]:
    """The measurements ``run`` makes, with their sizes for a full or a quick run."""
    return [
        ("connections", lambda d: connections_held(d, TARGET_CONNECTIONS)),
        *(
            (f"invites, {w.name}", lambda d, w=w: _invites(w, d, 1 if quick else 5))
            for w in _invite_workloads(quick)
        ),
        (
            "presence",
            lambda d: presence_fanout(d, FANOUT_CONTACTS, 20 if quick else 50),
        ),
        ("logins", lambda d: password_logins(d, 4, 2.0 if quick else 6.0)),
    ]


async def run_async(quick: bool) -> list[Figure]:
    """Run every part; a part that fails is reported and the others still run."""
    raise_open_files_limit()
    figures: list[Figure] = []
    errors: list[str] = []
    with tempfile.TemporaryDirectory(prefix="parley-bench-") as tmp:
        for name, measure in parts(quick):
            workdir = Path(tmp) / name
            workdir.mkdir()
            try:
                figures += await measure(workdir)
            except Exception as exc:
                traceback.print_exc()
                errors.append(f"{name}: {exc!r}")
                with contextlib.suppress(OSError):
                    for log in workdir.glob("*.log"):
                        tail = log.read_text(errors="replace").splitlines()[-5:]
                        _progress(f"{name}: server log tail: {' | '.join(tail)}")
    if errors:
        raise PartialFailure(figures, errors)
    return figures


def run(quick: bool) -> list[Figure]:
    """Measure the signaling server (``quick``: shorter runs, same loads)."""
    return asyncio.run(run_async(quick))
