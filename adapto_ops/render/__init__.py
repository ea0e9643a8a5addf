"""Rendering configs from templates (pure) and checking them with the real tools."""
