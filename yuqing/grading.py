"""Grading by the criteria of SPEC §2.3 (plan §4.3). Pure and deterministic."""

from __future__ import annotations

from enum import StrEnum

from yuqing.models import Assessment, Grade, Metrics
from yuqing.policy import Grading


class Criterion(StrEnum):
    cross_district = "cross_district"
    large_image_effect = "large_image_effect"
    mainstream_media_exposure = "mainstream_media_exposure"
    weibo_reposts = "weibo_reposts"


def fired_criteria(rules: Grading, assessment: Assessment | None, metrics: Metrics) -> list[str]:
    """The major-incident criteria that hold, each with the figure behind it."""
    fired: list[str] = []
    districts = len(metrics.districts)
    if (assessment and assessment.cross_district) or metrics.beyond_city:
        fired.append(f"{Criterion.cross_district}: reaches across districts or beyond the city")
    elif districts >= rules.cross_district_threshold:
        fired.append(
            f"{Criterion.cross_district}: {districts} districts ({', '.join(metrics.districts)})"
        )
    if assessment and assessment.large_image_effect:
        fired.append(f"{Criterion.large_image_effect}: the assessor's judgement")
    if metrics.mainstream_media:
        outlets = ", ".join(metrics.mainstream_media)
        fired.append(f"{Criterion.mainstream_media_exposure}: exposed by {outlets}")
    elif assessment and assessment.mainstream_media_exposure:
        fired.append(f"{Criterion.mainstream_media_exposure}: the assessor's finding")
    if metrics.weibo_reposts >= rules.weibo_repost_threshold:
        fired.append(
            f"{Criterion.weibo_reposts}: {metrics.weibo_reposts} reposts "
            f"(threshold {rules.weibo_repost_threshold})"
        )
    return fired


def grade_for(criteria: list[str]) -> Grade:
    return Grade.major if criteria else Grade.general
