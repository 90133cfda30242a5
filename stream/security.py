"""Kafka security from the settings: one place that turns `broker_security_protocol` and friends into what
Faust (`broker_credentials`) and plain aiokafka clients (the ingest producer, the topic admin) want.

SSL and SASL_SSL build one `ssl.SSLContext` (system trust store unless `broker_ssl_cafile`, a client
certificate for mutual TLS when `broker_ssl_certfile` is set); SASL mechanisms are PLAIN and SCRAM-SHA-256/512.
"""

from __future__ import annotations

import ssl
from typing import Any

from faust.auth import SASLCredentials, SSLCredentials
from faust.types.auth import CredentialsT

from stream.settings import Settings

__all__ = ["client_options", "faust_credentials", "ssl_context"]


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """The TLS context for SSL and SASL_SSL, None for the plaintext protocols."""
    if not settings.broker_security_protocol.endswith("SSL"):
        return None
    cafile = str(settings.broker_ssl_cafile) if settings.broker_ssl_cafile else None
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=cafile)
    context.check_hostname = settings.broker_ssl_check_hostname
    if settings.broker_ssl_certfile:
        keyfile = str(settings.broker_ssl_keyfile) if settings.broker_ssl_keyfile else None
        context.load_cert_chain(str(settings.broker_ssl_certfile), keyfile)
    return context


def faust_credentials(settings: Settings) -> CredentialsT | None:
    """Faust's `broker_credentials`: SASL (over TLS for SASL_SSL), TLS alone, or None for PLAINTEXT."""
    protocol = settings.broker_security_protocol
    context = ssl_context(settings)
    if protocol.startswith("SASL"):
        password = settings.broker_sasl_password.get_secret_value() if settings.broker_sasl_password else None
        return SASLCredentials(username=settings.broker_sasl_username, password=password,
                               mechanism=settings.broker_sasl_mechanism, ssl_context=context)
    if context is not None:
        return SSLCredentials(context)
    return None


def client_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for an aiokafka producer, consumer or admin client (empty for PLAINTEXT)."""
    protocol = settings.broker_security_protocol
    if protocol == "PLAINTEXT":
        return {}
    options: dict[str, Any] = {"security_protocol": protocol, "ssl_context": ssl_context(settings)}
    if protocol.startswith("SASL"):
        password = settings.broker_sasl_password.get_secret_value() if settings.broker_sasl_password else None
        options.update(sasl_mechanism=settings.broker_sasl_mechanism,
                       sasl_plain_username=settings.broker_sasl_username, sasl_plain_password=password)
    return options
