"""Password hashing with argon2id (argon2-cffi's defaults, RFC 9106's low-memory profile)."""

from __future__ import annotations

import asyncio

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()

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
