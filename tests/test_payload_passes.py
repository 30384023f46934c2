"""The worker's one walk over each activation and completion (yuqing.payload_passes) does what
the SDK's three do for our converter: every payload opened on the way in, sealed on the way out,
nothing else changed; converters it does not serve still get the SDK's passes."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
import temporalio.bridge.worker as bridge
from google.protobuf.message import Message
from temporalio.api.common.v1 import Payload
from temporalio.bridge.proto.workflow_activation import WorkflowActivation
from temporalio.bridge.proto.workflow_completion import WorkflowActivationCompletion
from temporalio.converter import SerializationContext, WithSerializationContext

from yuqing import payload_passes
from yuqing.client import data_converter, plain_data_converter
from yuqing.codec import EncryptionCodec, KeyRing, is_encrypted

RING = KeyRing.generate("k-passes")


def plain(text: str) -> Payload:
    return Payload(metadata={"encoding": b"json/plain"}, data=f'"{text}"'.encode())


def completion() -> WorkflowActivationCompletion:
    done = WorkflowActivationCompletion(run_id="run-1")
    commands = done.successful.commands
    commands.add().schedule_activity.arguments.extend([plain("arg 1"), plain("arg 2")])
    commands.add().schedule_activity.headers["h"].CopyFrom(plain("header"))
    commands.add().update_response.completed.CopyFrom(plain("answer"))
    commands.add().upsert_workflow_search_attributes.search_attributes.indexed_fields[
        "Stage"
    ].CopyFrom(plain("published"))
    commands.add().complete_workflow_execution.result.CopyFrom(plain("result"))
    # A failure's message and stack trace travel in its encoded attributes.
    failed = commands.add().fail_workflow_execution.failure
    failed.message = "Encoded failure"
    failed.encoded_attributes.CopyFrom(plain("the message and stack trace"))
    return done


def activation() -> WorkflowActivation:
    given = WorkflowActivation(run_id="run-1")
    given.jobs.add().initialize_workflow.arguments.extend([plain("report")])
    given.jobs.add().signal_workflow.input.extend([plain("signal")])
    given.jobs.add().do_update.input.extend([plain("update")])
    given.jobs.add().resolve_activity.result.completed.result.CopyFrom(plain("activity"))
    return given


def payloads(message: Any) -> list[Payload]:
    """Every payload in `message` the passes look at (search attributes are not among them)."""
    found: list[Payload] = []

    def walk(node: Any) -> None:
        if isinstance(node, Payload):
            found.append(node)
            return
        for field, value in node.ListFields():
            if field.name == "search_attributes":
                continue
            if field.message_type is None:
                continue
            if field.message_type.GetOptions().map_entry:
                for entry in value.values():
                    walk(entry)
            elif not isinstance(value, Message):  # a repeated field
                for item in value:
                    walk(item)
            else:
                walk(value)

    walk(message)
    return found


@pytest.fixture(autouse=True)
def installed() -> None:
    import temporalio

    assert payload_passes.install(), (
        f"temporalio {temporalio.__version__} is not among yuqing.payload_passes.CHECKED: read"
        " its passes (temporalio.bridge.worker) again before adding it"
    )


async def test_a_completion_is_sealed_in_one_walk_and_opens_as_it_was() -> None:
    converter = data_converter(RING)
    sealed = completion()
    await bridge.encode_completion(
        sealed, converter, encode_headers=True, storage_concurrency_limit=1
    )
    assert payloads(sealed) and all(is_encrypted(p) for p in payloads(sealed))
    # Search attributes stay readable: Temporal indexes them.
    attributes = sealed.successful.commands[3].upsert_workflow_search_attributes
    assert attributes.search_attributes.indexed_fields["Stage"] == plain("published")
    await bridge.decode_activation(
        sealed, converter, decode_headers=True, storage_concurrency_limit=1
    )
    assert sealed == completion()


async def test_an_activation_the_sdk_sealed_opens_in_one_walk() -> None:
    converter = data_converter(RING)
    sealed = activation()
    for payload in payloads(sealed):
        payload.CopyFrom((await converter.payload_codec.encode([payload]))[0])  # type: ignore[union-attr]
    assert all(is_encrypted(p) for p in payloads(sealed))
    await bridge.decode_activation(
        sealed, converter, decode_headers=True, storage_concurrency_limit=1
    )
    assert sealed == activation()


async def test_headers_are_left_alone_when_the_worker_does_not_encode_them() -> None:
    converter = data_converter(RING)
    sealed = completion()
    await bridge.encode_completion(
        sealed, converter, encode_headers=False, storage_concurrency_limit=1
    )
    assert sealed.successful.commands[1].schedule_activity.headers["h"] == plain("header")
    assert is_encrypted(sealed.successful.commands[0].schedule_activity.arguments[0])


async def test_without_a_codec_nothing_changes() -> None:
    given = completion()
    await bridge.encode_completion(
        given, plain_data_converter(), encode_headers=True, storage_concurrency_limit=1
    )
    assert given == completion()


class ContextCodec(EncryptionCodec, WithSerializationContext):
    """A codec that takes a serialization context: the SDK's passes serve it."""

    def with_context(self, context: SerializationContext) -> ContextCodec:
        return self


async def test_a_codec_that_takes_a_context_gets_the_sdks_passes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    converter = dataclasses.replace(plain_data_converter(), payload_codec=ContextCodec(RING))
    walked: list[str] = []
    # The SDK's passes visit with its command-aware visitor; the short one never does.
    real = bridge.CommandAwarePayloadVisitor

    class Counting(real):  # type: ignore[misc,valid-type]
        async def visit(self, fs: Any, root: Any) -> None:
            walked.append(type(root).__name__)
            await super().visit(fs, root)

    monkeypatch.setattr(bridge, "CommandAwarePayloadVisitor", Counting)
    sealed = completion()
    await bridge.encode_completion(
        sealed, converter, encode_headers=True, storage_concurrency_limit=1
    )
    assert walked == ["WorkflowActivationCompletion"] * 3
    assert all(is_encrypted(p) for p in payloads(sealed))
    walked.clear()
    await bridge.encode_completion(
        completion(), data_converter(RING), encode_headers=True, storage_concurrency_limit=1
    )
    assert walked == []


async def test_headers_stay_sealed_when_the_worker_does_not_decode_them() -> None:
    converter = data_converter(RING)
    sealed = activation()
    sealed.jobs[0].initialize_workflow.headers["h"].CopyFrom(plain("header"))
    for payload in payloads(sealed):
        payload.CopyFrom((await converter.payload_codec.encode([payload]))[0])  # type: ignore[union-attr]
    await bridge.decode_activation(
        sealed, converter, decode_headers=False, storage_concurrency_limit=1
    )
    assert is_encrypted(sealed.jobs[0].initialize_workflow.headers["h"])
    assert sealed.jobs[1].signal_workflow.input[0] == plain("signal")


async def test_a_payload_in_external_storage_fails_the_task_as_the_sdk_fails_it() -> None:
    """Not handed to the workflow (which drops a signal it cannot decode): the SDK's error."""
    given = activation()
    given.jobs[1].signal_workflow.input[0].metadata["encoding"] = b"json/external-storage-reference"
    with pytest.raises(RuntimeError, match="TMPRL1105"):
        await bridge.decode_activation(
            given, data_converter(RING), decode_headers=True, storage_concurrency_limit=1
        )
