"""The one way to connect to Temporal: payloads encrypted, TLS from the environment, tracing.

Every client (worker, API, starter, CLI, tests, the audit's replayer) is made here, so none can
send a payload in clear or forget the server's certificate. TLS settings use the names the
`temporal` CLI reads, so one environment serves both:

| variable | meaning |
|---|---|
| `TEMPORAL_TLS` | `true` for TLS with the system's root certificates (implied by any below) |
| `TEMPORAL_TLS_SERVER_CA_CERT_PATH` (`_DATA`) | the CA that signed the server's certificate |
| `TEMPORAL_TLS_CLIENT_CERT_PATH` (`_DATA`), `TEMPORAL_TLS_CLIENT_KEY_PATH` (`_DATA`) | mTLS |
| `TEMPORAL_TLS_SERVER_NAME` | the name the server's certificate carries, if not the address |
| `TEMPORAL_API_KEY` | an API key (Temporal Cloud), sent as a bearer token over TLS |

The address and namespace come from `Settings` (TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from temporalio.contrib.pydantic import PydanticPayloadConverter, pydantic_data_converter
from temporalio.converter import (
    DataConverter,
    DefaultFailureConverterWithEncodedAttributes,
    SerializationContext,
)
from temporalio.envconfig import ClientConfigProfile
from temporalio.service import TLSConfig

from yuqing.codec import EncryptionCodec, KeyRing, payload_format
from yuqing.settings import Settings
from yuqing.telemetry import tracing_interceptors

if TYPE_CHECKING:
    # (tools) Imported by `connect` alone: `yuqing audit` reads histories through the service
    # client (yuqing.audit.history), and temporalio.client is a third of its start-up.
    from temporalio.client import Client


class ConnectionSettingsError(ValueError):
    """The TLS settings in the environment cannot be used; the message names the variable."""


class SharedPydanticPayloadConverter(PydanticPayloadConverter):
    """The SDK's pydantic payload converter, made once per process.

    The SDK makes a payload converter from its class again and again: a `DataConverter` for
    every workflow activation (to encode and decode its payloads under its serialization
    context), one for every workflow run (whose type adapters, cached per converter, are then
    built afresh for each run). The pydantic one costs four times the default to make
    (~90–110 µs a `DataConverter` against ~25 µs), paid on every workflow task. It holds no
    state but that cache (thread-safe, bounded), and takes no serialization context, so one
    instance serves them all and its cache stays warm.
    """

    _shared: SharedPydanticPayloadConverter | None = None

    def __new__(cls) -> SharedPydanticPayloadConverter:
        shared = cls._shared
        if shared is None:
            shared = super().__new__(cls)
            PydanticPayloadConverter.__init__(shared)
            cls._shared = shared
        return shared

    def __init__(self) -> None:
        """Made in `__new__`, once."""

    def with_context(self, context: SerializationContext) -> Any:
        # The SDK's version fills `type(self)()` with converters bound to the context: that
        # would be the shared instance. None of pydantic's converters takes a context today
        # (this returns self); should one, the context gets a converter of its own.
        converters = self.get_converters_with_context(context)
        if converters is None:
            return self
        bound = PydanticPayloadConverter()
        bound._set_converters(*converters)
        return bound


def data_converter(ring: KeyRing) -> DataConverter:
    """pydantic JSON, then AES-GCM under `ring`; failures' messages and stack traces too."""
    return dataclasses.replace(
        plain_data_converter(),
        payload_codec=EncryptionCodec(ring, writes=payload_format(os.environ)),
    )


def plain_data_converter() -> DataConverter:
    """`data_converter` without its codec: what replays a history decoded as it was loaded."""
    return dataclasses.replace(
        pydantic_data_converter,
        payload_converter_class=SharedPydanticPayloadConverter,
        failure_converter_class=DefaultFailureConverterWithEncodedAttributes,
    )


def tls_options(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """`tls=` and `api_key=` for `Client.connect`, from the environment (see the module doc)."""
    env = os.environ if env is None else env
    try:
        profile = ClientConfigProfile.load(disable_file=True, override_env_vars=dict(env))
    except Exception as err:  # the bridge's own message names the variable
        raise ConnectionSettingsError(f"Temporal TLS settings: {err}") from err
    options: dict[str, Any] = {}
    if profile.api_key:
        options["api_key"] = profile.api_key
        options["tls"] = True
    if profile.tls is not None:
        try:
            tls = profile.tls.to_connect_tls_config()
        except OSError as err:
            raise ConnectionSettingsError(
                f"Temporal TLS settings: cannot read {err.filename}: {err.strerror}"
            ) from err
        if isinstance(tls, TLSConfig) and bool(tls.client_cert) != bool(tls.client_private_key):
            raise ConnectionSettingsError(
                "Temporal TLS settings: mTLS needs both TEMPORAL_TLS_CLIENT_CERT_PATH and"
                " TEMPORAL_TLS_CLIENT_KEY_PATH"
            )
        options["tls"] = tls
    return options


def payload_keys(settings: Settings, env: Mapping[str, str] | None = None) -> KeyRing:
    """The key ring `settings` names (its key file), else the environment's."""
    if settings.payload_keys_file is not None:
        return KeyRing.from_file(settings.payload_keys_file)
    return KeyRing.from_environ(env)


async def connect(
    settings: Settings,
    *,
    ring: KeyRing | None = None,
    env: Mapping[str, str] | None = None,
    **options: Any,
) -> Client:
    """A client of `settings`' server; payloads under `ring` (default: the environment's).

    `options` go to `Client.connect` as they are (`keep_alive_config=`, `retry_config=`…).
    """
    from temporalio.client import Client

    ring = ring or payload_keys(settings, env)
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=data_converter(ring),
        interceptors=tracing_interceptors(),
        **{**tls_options(env), **options},
    )
