"""Installing the console on a worker: the read model's feed, the forwarding of actions, the pages."""

from __future__ import annotations

from typing import Any

from correlator.readmodel import ReadModel
from stream.app import App
from stream.auth import TokenBook
from stream.console.feed import FeedState, FeedTopics, run_feed
from stream.console.forward import Forwarder
from stream.console.views import Console, install_console_views
from stream.notify.stage import Notify
from stream.review import similar_of
from stream.security import client_options
from stream.settings import Settings
from stream.tickets import Desk

__all__ = ["install_console", "install_forwarding"]


def install_forwarding(app: App) -> Forwarder:
    """Forward misdirected actions to their owner (stream/console/forward.py), innermost on the web port."""
    forwarder = Forwarder(str(app.conf.canonical_url))
    app.web.web_app.middlewares.append(forwarder.middleware())  # type: ignore[attr-defined]  # aiohttp driver's
    app.stop_hooks.append(forwarder.close)
    return forwarder


def install_console(app: App, settings: Settings, desk: Desk, notify: Notify | None, model: ReadModel) -> Console:
    """The read model's feed (a task of the worker), and the console's views over it."""
    topics = FeedTopics(
        incidents=settings.topics.incidents,
        incident_clocks=desk.incident_table.changelog_topic.get_topic_name(),
        tickets=desk.ticket_table.changelog_topic.get_topic_name(),
        control=notify.topic_name("control") if notify is not None else None)
    console = Console(model, FeedState(), TokenBook(settings.role_tokens()), lambda texts: similar_of(desk, texts),
                      tuple(desk.config.taxonomy))

    async def console_feed() -> None:
        options: dict[str, Any] = client_options(settings)
        await run_feed(model, topics, settings.bootstrap_servers, options, console.feed, console.on_change)

    app.task(console_feed)

    app.stop_hooks.append(console.close)
    install_console_views(app, console)
    return console
