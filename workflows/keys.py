"""Signed decisions in the workflows: the patch that turns them on, and reading keys again.

An incident keeps the keys it loaded at intake (in its history). One that outlives a key
rotation meets a key id it has not seen, or holds a copy older than `KEYS_FRESH`: it reads
the keys file again through an activity before deciding, so a new key counts and a key
withdrawn early stops counting, and the new copy is in the history for replay.
"""

from __future__ import annotations

from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from workflows.activity_types import ConfigurationActivities
    from workflows.common import CONFIG_RETRY, QUICK, said
    from yuqing.decider import Decider
    from yuqing.effects import LoadKeys
    from yuqing.shared_configuration import shared

# Histories from before signed decisions replay without them (and without the authorization
# file's rules); every incident started since checks the proof of every decision.
SIGNED_DECISIONS_PATCH = "authority-signed-decisions"


async def keys_for(decider: Decider[Any], incident_id: str, signal: str, payload: Any) -> None:
    """Read the keys again if deciding this payload needs it (`Decider.key_wanted`)."""
    if not decider.key_wanted(signal, payload, workflow.now()):
        return
    keys = await ConfigurationActivities.load_keys.run(
        LoadKeys(incident_id=incident_id),
        start_to_close_timeout=QUICK,
        retry_policy=CONFIG_RETRY,
        summary=said(f"read the keys again (for {signal})"),
    )
    decider.keys_reloaded(shared(keys), workflow.now())  # mem: one copy per worker
