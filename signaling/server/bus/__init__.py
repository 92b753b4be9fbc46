"""How a connection reaches the hub: in the same process (``memory``), or through Redis to the
instance that holds the hub's state (``redis``; several ``parley-server`` instances, one service).
"""

from signaling.server.bus.base import Bus, BusUnavailable, bus_for

__all__ = ["Bus", "BusUnavailable", "bus_for"]
