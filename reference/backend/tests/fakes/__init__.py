"""Fake third-party services on loopback for the backend's tests (GigaChat, Telegram)."""
