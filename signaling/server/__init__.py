"""The Parley signaling server: accounts, contacts, presence and call routing."""

from signaling.server.app import SignalingServer, StartupError
from signaling.server.config import RateLimits, ServerConfig

__all__ = ["RateLimits", "ServerConfig", "SignalingServer", "StartupError"]
