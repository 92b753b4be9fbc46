"""The Qt-free core of the client: signaling client and call engine, testable without a window."""
