"""Real-time edges: the session WebSocket, the room hub, the aiortc connection check."""
