"""Authentication: argon2 password hashes, Supabase-format JWTs, the current-user dependency."""
