"""The control socket: message shapes, the owner-only server, and the client."""
