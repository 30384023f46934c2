"""Incidents share one copy of each configuration content (yuqing.shared_configuration)."""

from __future__ import annotations

from tests import keys
from yuqing.authorization import load_authorization
from yuqing.effects import Configuration
from yuqing.policy import load_policy
from yuqing.roster import load_roster
from yuqing.settings import Settings
from yuqing.shared_configuration import share_fields, shared
from yuqing.signing import load_keyring


def _decoded() -> Configuration:
    """A configuration as an incident receives it: decoded afresh from its JSON."""
    settings = Settings.from_env({"DATABASE_URL": "postgresql://unused", **keys.settings_env()})
    assert settings.keys_path is not None
    made = Configuration(
        policy=load_policy(settings.policy_path),
        roster=load_roster(settings.roster_path),
        authorization=load_authorization(settings.authorization_path),
        keys=load_keyring(settings.keys_path),
        continue_after_decisions=2000,
    )
    return Configuration.model_validate_json(made.model_dump_json())


def test_incidents_under_the_same_files_hold_one_copy_of_each() -> None:
    first, second = _decoded(), _decoded()
    assert first.policy is not second.policy
    share_fields(first)
    share_fields(second)
    assert first.policy is second.policy and first.roster is second.roster
    assert first.authorization is second.authorization and first.keys is second.keys
    # The incident's own record is as decoded: what it sends on carries the same JSON.
    assert second.model_dump_json() == _decoded().model_dump_json()
    assert second.model_fields_set == _decoded().model_fields_set


def test_a_different_content_is_its_own_copy() -> None:
    base = shared(_decoded().policy)
    drill = shared(base.scaled(60.0))
    assert drill is not base and drill != base
    assert shared(base.scaled(60.0)) is drill  # the same drill speed: the same copy
    # Equal values with other fields set (its defaults left out): a payload of it could
    # differ (`exclude_unset`), so it is not swapped for the copy.
    partly = type(base).model_validate(base.model_dump(exclude_defaults=True))
    assert partly == base and partly.model_fields_set != base.model_fields_set
    assert shared(partly) is partly


def test_a_model_that_can_change_stays_the_incidents_own() -> None:
    config = _decoded()
    assert shared(config) is config  # Configuration is not frozen: never shared whole
