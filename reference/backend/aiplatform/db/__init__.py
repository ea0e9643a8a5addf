"""Database access: the pool, per-user transactions, migrations.

    from aiplatform.db import as_user
    async with as_user(claims) as conn:
        rows = await (await conn.execute("select * from dialogs")).fetchall()
"""

from aiplatform.db import pool
from aiplatform.db.pool import DatabaseNotConfigured
from aiplatform.db.session import DATABASE_ROLES, as_service, as_user

__all__ = ["DATABASE_ROLES", "DatabaseNotConfigured", "as_service", "as_user", "pool"]
