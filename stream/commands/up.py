"""`aiops up`: the embedded broker and a worker in one command (see stream.commands.worker)."""

from stream.commands.worker import configure_up as configure
from stream.commands.worker import run_up as run

__all__ = ["configure", "run"]
