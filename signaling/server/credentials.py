"""Password hashing (Argon2id) and session tokens.

Argon2 is made to be slow, so it runs on a small thread pool: a login costs
its ~50 ms on another core while the event loop keeps serving everyone else,
and the pool's size bounds the memory the hashes take at once.

Parameters: Argon2id, time cost 2, 32 MiB, 1 lane. On this project's 2-core
reference machine one verification takes about 45 ms (see bench/), under the
100 ms budget for a login, and above OWASP's minimum (19 MiB, t=2).
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError


@dataclass(frozen=True, slots=True)
class HashParameters:
    """Argon2id cost parameters."""

    time_cost: int = 2
    memory_kib: int = 32 * 1024
    parallelism: int = 1


class PasswordVault:
    """Hashes and checks passwords off the event loop."""

    def __init__(self, params: HashParameters | None = None, workers: int = 2) -> None:
        params = params or HashParameters()
        self._hasher = PasswordHasher(
            time_cost=params.time_cost,
            memory_cost=params.memory_kib,
            parallelism=params.parallelism,
            type=Type.ID,
        )
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="parley-argon2")
        # Checked against when a username does not exist, so that a miss costs
        # as long as a wrong password and timing does not reveal accounts.
        self._decoy = self._hasher.hash(secrets.token_hex(16))

    async def hash(self, password: str) -> str:
        """An encoded Argon2id hash of ``password``."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._hasher.hash, password)

    async def verify(self, encoded: str | None, password: str) -> bool:
        """Whether ``password`` matches; ``encoded=None`` spends the same time and says no."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._verify_sync, encoded, password)

    def _verify_sync(self, encoded: str | None, password: str) -> bool:
        try:
            self._hasher.verify(encoded or self._decoy, password)
        except (VerificationError, InvalidHashError):
            return False
        return encoded is not None

    def needs_rehash(self, encoded: str) -> bool:
        """Whether a stored hash was made with other parameters than today's."""
        return self._hasher.check_needs_rehash(encoded)

    def close(self) -> None:
        """Stop the worker threads."""
        self._executor.shutdown(wait=True)


def new_token() -> str:
    """A session token: 256 random bits, URL-safe."""
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    """What the store keeps of a token: its SHA-256 (tokens are random, so no salt is needed)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()
