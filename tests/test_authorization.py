"""Who may do what, as data (config/authorization.toml), through the HTTP API (issue 10).

The trail's actor is always the token's person; a system source is recorded beside it; reads
are scoped to the reader's units; reports only for units the reporter may report for.
"""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest

from api import create_app
from tests.test_api import (
    Api,
    api,  # noqa: F401 (the fixture)
    assessed,
    incident,
    published,
    who,
)
from yuqing.authorization import AuthorizationError, load_authorization
from yuqing.roster import load_roster
from yuqing.settings import PROJECT_ROOT, Settings
from yuqing.signing import load_keyring, load_private_key
from yuqing.stack.keys import ensure_dev_keys

DRAFT = {"text": "经核查，涉事超市已下架相关商品。"}


async def trail(api: Api, incident_id: str) -> list[dict[str, Any]]:  # noqa: F811
    entries: list[dict[str, Any]] = (await api.state(incident_id))["trail"]
    return entries


async def test_figures_are_sent_by_a_person_and_their_source_kept_beside_them(api: Api) -> None:  # noqa: F811
    incident_id = await assessed(api)
    base = f"/incidents/{incident_id}"
    # Legal may not send figures: refused, and on the record with Legal as its actor.
    figures = {"source": "weibo-monitor", "weibo_reposts": 25}
    response = await api.post(f"{base}/metrics", figures, "zhao.lei")
    assert response.status_code == 403, response.text
    assert response.json()["refusal_kind"] == "forbidden"
    refused = response.json()["entry"]
    assert refused["actor"] == "zhao.lei" and refused["refused"] is True
    state = await api.state(incident_id)
    assert state["grade"] == "general" and state["metrics"]["weibo_reposts"] == 0
    assert not any(n["kind"] == "major_notice" for n in state["notifications"])
    assert any(e["refused"] and e["actor"] == "zhao.lei" for e in state["trail"])
    # Nor can a body put words in anyone else's mouth.
    response = await api.post(f"{base}/metrics", {**figures, "reported_by": "li.ming"}, "zhao.lei")
    assert response.status_code == 403 and "own name" in response.json()["detail"]

    # The Office sends them from the monitor: the Office acts, the monitor is the source.
    entry = await api.accepted(f"{base}/metrics", figures, "li.ming")
    assert entry["actor"] == "li.ming" and entry["role"] == "office"
    assert entry["source"] == "weibo-monitor"
    assert entry["key_id"] == "test-api-1"
    state = await api.state(incident_id)
    assert state["grade"] == "major"
    assert state["grade_history"][-1]["reason"] == "new figures from weibo-monitor"
    assert not any(e["actor"] == "weibo-monitor" for e in await trail(api, incident_id))


async def test_review_by_another_units_head_is_refused(api: Api) -> None:  # noqa: F811
    incident_id = await published(api)
    base = f"/incidents/{incident_id}"
    await api.accepted(f"{base}/close", {"reason": "事态平息"}, "li.ming")
    review = {"what_happened": "过期食品传言", "what_worked": "及时上报", "what_to_change": "巡查"}
    response = await api.post(f"{base}/review", review, "liu.yang")
    assert response.status_code == 403, response.text
    assert "liu.yang is not" in response.json()["detail"]
    state = await api.state(incident_id)
    assert state["stage"] == "closed" and state["review"] is None
    # Recorded, by name (a notice's line may follow it in the trail).
    assert any(
        e["refused"] and e["actor"] == "liu.yang" and e["signal"] == "submit_review"
        for e in state["trail"]
    )
    # Their own unit's head may.
    entry = await api.accepted(f"{base}/review", review, "huang.wei")
    assert entry["actor"] == "huang.wei" and entry["role"] == "unit_head"


async def test_reading_is_scoped_to_the_readers_units(api: Api) -> None:  # noqa: F811
    incident_id = await assessed(api)
    base = f"/incidents/{incident_id}"
    # The Office, Legal, the publicity lead and the leading group see every incident; the
    # unit's own people see theirs.
    for person in ("li.ming", "zhao.lei", "zhou.min", "tang.guo", "chen.jing", "huang.wei"):
        response = await api.http.get(base, headers=who(person))
        assert response.status_code == 200, (person, response.text)
    # Another unit's head: as if it did not exist.
    response = await api.http.get(base, headers=who("liu.yang"))
    assert response.status_code == 404
    assert "does not exist, or is not yours to see" in response.json()["detail"]
    post = {"post_id": "p1", "platform": "微博", "author": "网民甲", "content": "结果如何？"}
    await api.accepted(f"{base}/posts", post, "chen.jing")
    await api.until(incident_id, lambda s: bool(s["posts"] and s["posts"][0]["deadlines"]))
    assert (await api.http.get(f"{base}/posts/p1", headers=who("liu.yang"))).status_code == 404
    assert (await api.http.get(f"{base}/posts/p1", headers=who("li.ming"))).status_code == 200

    # The one function the console's list asks too.
    roster = load_roster(PROJECT_ROOT / "config" / "roster.toml")
    rules = load_authorization()
    assert rules.read_scope(roster, "li.ming").visibility_query() is None
    scope = rules.read_scope(roster, "liu.yang")
    assert not scope.allows("xixiangtang-branch") and scope.allows("qingxiu-branch")
    assert scope.visibility_query() == 'IncidentUnit IN ("qingxiu-branch")'


async def test_reports_only_for_units_the_reporter_may_report_for(api: Api) -> None:  # noqa: F811
    # liu.yang is of the Qingxiu branch: a report for Xixiangtang is not theirs to make.
    response = await api.report(incident(), person="liu.yang")
    assert response.status_code == 403, response.text
    assert "liu.yang may report incidents only for qingxiu-branch" in response.json()["detail"]
    alert = {"platform": "weibo", "url": "https://weibo.example/status/42", "title": "传言"}
    response = await api.post("/intake/monitor?unit=xixiangtang-branch", alert, "liu.yang")
    assert response.status_code == 403
    form = {"ticket_no": "T-1", "summary": "来电", "unit": "xixiangtang-branch"}
    response = await api.http.post("/intake/hotline-12315", data=form, headers=who("liu.yang"))
    assert response.status_code == 403
    # Legal reports for no unit; the Office for any.
    assert (await api.report(incident(), person="zhao.lei")).status_code == 403
    response = await api.report(incident(unit="qingxiu-branch"), person="li.ming")
    assert response.status_code == 201, response.text
    response = await api.report(incident(unit="qingxiu-branch"), person="liu.yang")
    assert response.status_code == 201, response.text


async def test_only_the_capitalised_bearer_scheme(api: Api) -> None:  # noqa: F811
    incident_id = await assessed(api)
    response = await api.http.get(
        f"/incidents/{incident_id}", headers={"Authorization": "bearer dev-li.ming"}
    )
    assert response.status_code == 401
    assert "write it `Bearer`, capital B" in response.json()["detail"]
    response = await api.http.post(
        f"/incidents/{incident_id}/drafts",
        json=DRAFT,
        headers={"Authorization": "BEARER dev-chen.jing"},
    )
    assert response.status_code == 401


def test_every_route_names_what_it_does(settings: Settings) -> None:
    """Each route of the API is in the authorization file, and each entry is a route."""
    rules = load_authorization()
    app = create_app(None, None, settings)  # type: ignore[arg-type]
    routes = {
        f"{method.upper()} {path}"
        for path, methods in app.openapi()["paths"].items()
        for method in methods
    }
    steps = {
        f"POST /incidents/{{incident_id}}/approvals/{step}"
        for step in ("unit_head", "section_head", "publicity_lead", "leadership_group")
    }
    routes = (routes - {"POST /incidents/{incident_id}/approvals/{step}"}) | steps
    unnamed = {r for r in routes if not r.startswith(("GET /health", "GET /metrics"))}
    assert unnamed - set(rules.routes) == set()
    assert set(rules.routes) - unnamed == set()
    # Every signal the workflows decide has its entry, naming who may send it.
    from yuqing.models import POST_SIGNAL_PAYLOADS, SIGNAL_PAYLOADS

    assert set(SIGNAL_PAYLOADS) <= set(rules.incident)
    assert set(POST_SIGNAL_PAYLOADS) <= set(rules.post)


def test_a_malformed_authorization_file_names_the_entry(tmp_path: Path) -> None:
    text = (PROJECT_ROOT / "config" / "authorization.toml").read_text(encoding="utf-8")
    bad = tmp_path / "authorization.toml"
    bad.write_text(text.replace('roles = ["legal"]', 'roles = ["janitor"]'), encoding="utf-8")
    with pytest.raises(AuthorizationError, match=r"incident.legal_opinion.roles.0"):
        load_authorization(bad)
    bad.write_text(text.replace('actor = "assessor_id"\n', ""), encoding="utf-8")
    with pytest.raises(AuthorizationError, match=r"incident.submit_assessment"):
        load_authorization(bad)


def test_the_stack_makes_its_keys_on_first_start(tmp_path: Path) -> None:
    first = ensure_dev_keys(tmp_path, Settings())
    assert first.keys_path == tmp_path / "keys" / "keys.toml"
    assert first.signing_key_path is not None and first.signing_key_id == "api-dev-1"
    assert stat.S_IMODE(first.signing_key_path.stat().st_mode) == 0o600
    keyring = load_keyring(first.keys_path)
    assert [k.service for k in keyring.keys] == ["api"]
    key = load_private_key(first.signing_key_path)
    # Started again, the same keys: nothing is made twice.
    again = ensure_dev_keys(tmp_path, Settings())
    assert again == first
    assert load_private_key(again.signing_key_path).private_bytes_raw() == key.private_bytes_raw()  # type: ignore[union-attr]
    # Keys configured elsewhere are used as they are.
    own = Settings(keys_path=tmp_path / "elsewhere.toml")
    assert ensure_dev_keys(tmp_path / "other", own) == own
    # No private key is in the repository.
    tracked = subprocess.run(
        ["git", "ls-files", "*.pem", "*.key"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert tracked.stdout == ""
    assert (
        "PRIVATE KEY"
        not in subprocess.run(
            ["git", "grep", "-l", "PRIVATE KEY-----", "--", ".", ":!tests/test_authorization.py"],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
        ).stdout
    )
