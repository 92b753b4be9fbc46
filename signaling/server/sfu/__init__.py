"""Meetings through a media server (an SFU): Janus's VideoRoom, driven by parley-server.

``janus.py`` speaks Janus's WebSocket API and admin API; ``pool.py`` keeps the
configured instances, picks one for a new meeting and notices one that dies;
``relay.py`` is the hub's part: rooms per meeting, a publisher and subscribers
per participant, and the ``sfu.*`` requests and events that carry plain JSEP
between a client and Janus (which stays on loopback); ``launch.py`` starts a
Janus with the configuration of ``deploy/janus/``.
"""
