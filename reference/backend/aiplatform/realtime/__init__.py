"""Real time: the WebSocket endpoint and the LISTEN/NOTIFY fan-out behind it."""
