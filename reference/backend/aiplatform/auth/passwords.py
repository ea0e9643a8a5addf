"""Password hashing with argon2id.

Defaults are argon2-cffi's (RFC 9106's low-memory profile: 3 passes over
64 MiB). ARGON2_TIME_COST / ARGON2_MEMORY_KIB lower them where speed matters
more than resistance to offline guessing (the tests). Every hash records its
own parameters, so changing them never breaks existing passwords.
"""

from __future__ import annotations

import asyncio
import os

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError


def _hasher_from_env() -> PasswordHasher:
    default = PasswordHasher()
    time_cost = int(os.environ.get("ARGON2_TIME_COST") or default.time_cost)
    memory_kib = int(os.environ.get("ARGON2_MEMORY_KIB") or default.memory_cost)
    return PasswordHasher(time_cost=time_cost, memory_cost=memory_kib)


_hasher = _hasher_from_env()

# A real hash to verify against when the email is unknown, so a login for a
# missing account costs as much as one with a wrong password (no user
# enumeration by timing).
_DUMMY_HASH = _hasher.hash("not-a-password")


async def hash_password(password: str) -> str:
    """The argon2id hash of ``password`` (in a thread: it costs tens of ms of CPU)."""
    return await asyncio.to_thread(_hasher.hash, password)


async def verify_password(password_hash: str | None, password: str) -> bool:
    """Whether ``password`` matches; None (unknown user) still spends the time and says no."""

    def check() -> bool:
        try:
            return _hasher.verify(password_hash or _DUMMY_HASH, password) and bool(password_hash)
        except (VerificationError, InvalidHashError):
            return False

    return await asyncio.to_thread(check)
