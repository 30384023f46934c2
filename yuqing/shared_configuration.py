"""One copy of each policy, roster, authorization and keyring for all the incidents of a worker.

Every incident receives its configuration from `load_configuration` (and, after continuing as
new, from its previous run), decoded afresh: about 100 KiB of pydantic objects, the same for
every incident begun under the same files. With thousands of incidents parked in the sticky
cache that was a fifth of the worker's memory (issue 9, bench's parked section).

`shared(model)` hands back the copy this process already holds of a model with the same
content, or keeps this one as that copy. The key is the content itself (the type, and the JSON
of the model with and without its unset fields, so that nothing a payload could show differs),
and the copy handed out must also compare equal: an incident sees exactly the values its
history gave it, whichever object carries them, so replay and determinism are as before. Only
frozen models are shared (pydantic refuses an assignment to them, and nothing in the workflows
changes their lists in place: tests/test_sandbox.py checks both), and a copy lives only as long
as some incident holds it.
"""

from __future__ import annotations

import hashlib
import threading
import weakref
from typing import TypeVar

from pydantic import BaseModel

M = TypeVar("M", bound=BaseModel)

# Held weakly: a version nobody runs under any more is gone with its last incident. Workflow
# tasks of different runs may run on different threads, hence the lock.
_COPIES: weakref.WeakValueDictionary[tuple[type[BaseModel], bytes], BaseModel] = (
    weakref.WeakValueDictionary()
)
_LOCK = threading.Lock()


def _content_key(model: BaseModel) -> tuple[type[BaseModel], bytes]:
    digest = hashlib.sha256(model.model_dump_json().encode("utf-8"))
    digest.update(b"\0")
    digest.update(model.model_dump_json(exclude_unset=True).encode("utf-8"))
    return type(model), digest.digest()


def shared(model: M) -> M:
    """The process's copy of `model`'s content (itself, if it is the first)."""
    if not model.model_config.get("frozen"):
        return model  # a model that can be changed in place stays the incident's own
    key = _content_key(model)
    with _LOCK:
        found = _COPIES.get(key)
        if found is not None and found == model:
            return found
        _COPIES[key] = model
    return model


def copies_held() -> int:
    """How many distinct contents are held (for tests and the bench)."""
    with _LOCK:
        return len(_COPIES)


def share_fields(holder: BaseModel) -> None:
    """Each frozen model in `holder`'s fields replaced by the shared copy of its content.

    The holder (an activity result or a workflow input, the incident's own) keeps its set of
    fields as decoded: the values are swapped in its `__dict__`, not assigned.
    """
    assert not holder.model_config.get("frozen"), "a frozen holder is shared whole, or not at all"
    for name in type(holder).model_fields:
        value = holder.__dict__.get(name)
        if isinstance(value, BaseModel):
            holder.__dict__[name] = shared(value)
