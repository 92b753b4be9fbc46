"""The guest page: what ``parley-server`` serves over HTTP at a guest link's path."""

from signaling.server.web.routes import CONTENT_SECURITY_POLICY, STATIC_FILES, guest_page

__all__ = ["CONTENT_SECURITY_POLICY", "STATIC_FILES", "guest_page"]
