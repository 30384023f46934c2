"""The plan as data: the default policy, malformed policies refused at start-up, grading."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from tests.conftest import DatabaseUrls
from worker import check_configuration
from yuqing.grading import fired_criteria, grade_for
from yuqing.models import Assessment, Metrics
from yuqing.policy import PolicyError, load_policy
from yuqing.roster import RosterError, load_roster
from yuqing.settings import Settings

DEFAULT = Settings().policy_path


def test_default_policy_is_the_nanning_plan() -> None:
    policy = load_policy(DEFAULT)
    assert policy.grading.weibo_repost_threshold == 20
    assert [s.role for s in policy.chain("general")] == ["unit_head", "publicity_lead"]
    assert [s.role for s in policy.chain("major")] == [
        "unit_head",
        "section_head",
        "leadership_group",
    ]
    hours = {key: rule.hours for key, rule in policy.deadlines.items()}
    assert hours == {"report_important": 4, "report_especially_major": 2, "publish_statement": 24}


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "policy.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ('role = "section_head"', 'role = "chief_of_everything"', "chains.major.1.role"),
        ("hours = 24", "hours = -24", "deadlines.publish_statement.hours"),
        ('signal = "section_head_review"', 'signal = "nod"', "unknown approval signal 'nod'"),
        ("weibo_repost_threshold = 20", "weibo_repost_threshold = 0", "weibo_repost_threshold"),
        ("at_fractions = [0.5]", "at_fractions = [1.5]", "between 0 and 1"),
        ('sensitivity = "especially_major"\n', "", "no report deadline applies"),
    ],
)
def test_malformed_policy_is_refused_naming_the_entry(
    tmp_path: Path, old: str, new: str, message: str
) -> None:
    text = DEFAULT.read_text(encoding="utf-8")
    assert old in text
    path = _write(tmp_path, text.replace(old, new, 1))
    with pytest.raises(PolicyError) as refused:
        load_policy(path)
    assert message in str(refused.value)
    assert str(path) in str(refused.value)
    # The worker will not start on it.
    with pytest.raises(PolicyError):
        check_configuration(Settings(policy_path=path))


def test_policy_that_is_not_toml(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="not valid TOML"):
        load_policy(_write(tmp_path, "version = "))
    with pytest.raises(PolicyError, match="does not exist"):
        load_policy(tmp_path / "missing.toml")


def test_roster_refuses_a_per_unit_role_without_unit(tmp_path: Path) -> None:
    path = tmp_path / "roster.toml"
    path.write_text(
        'version = "x"\n[[people]]\nid = "a"\nname = "A"\nroles = [{ role = "unit_head" }]\n'
    )
    with pytest.raises(RosterError, match="held for a unit"):
        load_roster(path)


def test_default_roster_loads() -> None:
    roster = load_roster(Settings().roster_path)
    assert roster.holds("huang.wei", "unit_head", "xixiangtang-branch")
    assert not roster.holds("huang.wei", "unit_head", "qingxiu-branch")
    assert tomllib.loads(Settings().roster_path.read_text())["version"] == roster.version


@pytest.mark.parametrize(
    ("assessment", "metrics", "expected"),
    [
        ({}, {}, []),
        ({}, {"weibo_reposts": 19}, []),
        ({}, {"weibo_reposts": 20}, ["weibo_reposts"]),
        ({}, {"districts": ["西乡塘区", "青秀区"]}, ["cross_district"]),
        ({}, {"beyond_city": True}, ["cross_district"]),
        ({"large_image_effect": True}, {}, ["large_image_effect"]),
        ({}, {"mainstream_media": ["广西日报"]}, ["mainstream_media_exposure"]),
        (
            {"cross_district": True, "mainstream_media_exposure": True},
            {"weibo_reposts": 100},
            ["cross_district", "mainstream_media_exposure", "weibo_reposts"],
        ),
    ],
)
def test_grading_criteria(assessment: dict, metrics: dict, expected: list[str]) -> None:  # type: ignore[type-arg]
    rules = load_policy(DEFAULT).grading
    fired = fired_criteria(
        rules, Assessment(assessor_id="li.ming", **assessment), Metrics(**metrics)
    )
    assert [c.split(":")[0] for c in fired] == expected
    assert grade_for(fired) == ("major" if expected else "general")


async def test_migrating_twice_in_one_process_applies_nothing_new(database: DatabaseUrls) -> None:
    from yuqing import db

    # Migrations are the owner's to run (the service may not create tables).
    owner = await db.create_pool(database.owner)
    try:
        assert await db.migrate(owner) == []
        assert await db.migrate(owner) == []
    finally:
        await owner.close()
