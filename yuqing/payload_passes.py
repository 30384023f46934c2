"""(speed, issue 9) The SDK's walks over each workflow activation and completion, cut to those
that do something for our data converters.

For every activation it hands the workflow, and every completion it sends back, the SDK walks
the whole message three times (temporalio 1.35, `temporalio.bridge.worker`): once for payloads
that refer to external storage, once to fetch or store them there, once for the codec. Each
walk resolves, for every payload sequence it meets, the serialization context of the command
it belongs to, and a data converter for that context. We configure no external storage, and
our codec (`yuqing.codec.EncryptionCodec`) takes no serialization context: for us two of the
walks change nothing, and the third needs only the codec. Measured before this change (py-spy
of the worker over lifecycles): the walks were about a sixth of its busy main thread, besides
the codec's own work.

So, where a converter has no external storage and a codec that takes no context, one walk
hands every payload sequence to the codec; where it has neither, there is nothing to walk (a
replay's converter: its histories are decoded as they are read). Any other converter (one with
external storage, or a codec that takes a context) gets the SDK's passes as they are.

A payload that refers to external storage (another client's: nothing of ours writes one) fails
the activation as the SDK's passes fail it (TMPRL1105, the task tried again), rather than
reaching the workflow, where a signal that cannot be decoded is dropped.

`install` puts these in the SDK's place, once per process, on the SDK versions they were
checked against (`CHECKED`: the passes are the SDK's private functions, and a later version
may give them more to do); any other keeps its own.
"""

from __future__ import annotations

from typing import Any

_INSTALLED = False
# The temporalio versions whose passes these were read against (temporalio.bridge.worker).
CHECKED = ("1.35.",)


def install() -> bool:
    """Use the short passes in this process from now on; whether they are in place."""
    global _INSTALLED
    if _INSTALLED:
        return True
    import temporalio

    if not temporalio.__version__.startswith(CHECKED):
        return False
    try:
        import temporalio.bridge.worker as bridge
        from temporalio.bridge._visitor import PayloadVisitor
        from temporalio.converter import DataConverter, WithSerializationContext
        from temporalio.converter._data_converter import (
            _has_reference_marker,
            _is_reference_payload,
        )
        from temporalio.converter._extstore import StorageOperationMetrics
    except ImportError:  # another SDK: its own passes
        return False
    sdk_decode = getattr(bridge, "decode_activation", None)
    sdk_encode = getattr(bridge, "encode_completion", None)
    visitor_functions = getattr(bridge, "_Visitor", None)
    known = {"payload_codec", "external_storage"} <= set(
        getattr(DataConverter, "__dataclass_fields__", {})
    )
    if sdk_decode is None or sdk_encode is None or visitor_functions is None or not known:
        return False

    def plain_codec(converter: Any) -> tuple[bool, Any]:
        """(whether the short pass serves `converter`, the codec it applies or None)."""
        codec = converter.payload_codec
        if converter.external_storage is not None or isinstance(codec, WithSerializationContext):
            return False, None
        return True, codec

    def opener(codec: Any) -> Any:
        async def open_all(payloads: Any) -> Any:
            for payload in payloads:
                if _has_reference_marker(payload) or _is_reference_payload(payload):
                    raise RuntimeError(
                        "[TMPRL1105] Detected externally stored payload(s) but external storage"
                        " is not configured."
                    )
            return await codec.decode(payloads)

        return open_all

    async def decode_activation(
        activation: Any, data_converter: Any, decode_headers: bool, *args: Any, **kw: Any
    ) -> Any:
        served, codec = plain_codec(data_converter)
        if not served:
            return await sdk_decode(activation, data_converter, decode_headers, *args, **kw)
        if codec is not None:
            visitor = PayloadVisitor(skip_search_attributes=True, skip_headers=not decode_headers)
            await visitor.visit(visitor_functions(opener(codec)), activation)
        return StorageOperationMetrics()

    async def encode_completion(
        completion: Any, data_converter: Any, encode_headers: bool, *args: Any, **kw: Any
    ) -> Any:
        served, codec = plain_codec(data_converter)
        if not served:
            return await sdk_encode(completion, data_converter, encode_headers, *args, **kw)
        if codec is not None:
            visitor = PayloadVisitor(skip_search_attributes=True, skip_headers=not encode_headers)
            await visitor.visit(visitor_functions(codec.encode), completion)
        return StorageOperationMetrics()

    bridge.decode_activation = decode_activation
    bridge.encode_completion = encode_completion
    _INSTALLED = True
    return True
