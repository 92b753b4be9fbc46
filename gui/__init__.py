"""Parley's desktop client: the call engine, the signaling client and the Qt windows.

Filled in by the call-engine and desktop-app issues; the signaling server lives in ``signaling``.
"""
