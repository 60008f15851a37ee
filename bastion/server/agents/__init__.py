"""The agents of the config over HTTP, server-sent events and WebSocket, and their
threads and runs."""
