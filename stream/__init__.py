"""Streaming side: the Faust app, agents, web views and the embedded broker launcher."""
