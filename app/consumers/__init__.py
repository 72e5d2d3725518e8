"""Consumers as data: destinations of forwarded events, each with its own secret and filters (docs/consumers.md)."""
