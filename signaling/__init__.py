"""Parley's signaling server and the protocol definitions both sides share."""

__version__ = "0.1.0"
