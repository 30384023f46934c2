"""The message catalog: every key in both languages, and every key the code uses is in it."""

from __future__ import annotations

import re
import string
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from yuqing import i18n
from yuqing.i18n import catalog
from yuqing.listing import Light
from yuqing.models import EvidenceKind, Grade, IntakeChannel, PublicationChannel
from yuqing.policy import DeadlineKey
from yuqing.roles import Role
from yuqing.state import DraftStatus, PostStatus, Stage

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES = ROOT / "api" / "console" / "templates"
SOURCES = [
    *TEMPLATES.glob("*.html"),
    *(ROOT / "api").rglob("*.py"),
    *(ROOT / "yuqing" / "cli").glob("*.py"),
    ROOT / "yuqing" / "authorization.py",
]
# t("key"), t('key'), r.t("key"), Said("key", …), and the name of an enumerated value:
# label("stage", …).
USED = re.compile(r"""\b(?:t|Said)\(\s*["']([a-z_]+\.[a-z0-9_.]+)["']""")
PREFIXES = re.compile(r"""\b(?:label\(\s*|t\(\s*)["']([a-z_]+)\.?["']\s*(?:,|~)""")


def placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def test_every_key_has_both_languages() -> None:
    zh, en = catalog("zh"), catalog("en")
    assert zh, "the Chinese catalog is empty"
    missing_en = sorted(set(zh) - set(en))
    missing_zh = sorted(set(en) - set(zh))
    assert not missing_en, f"keys without English: {missing_en}"
    assert not missing_zh, f"keys without Chinese: {missing_zh}"


def test_both_languages_fill_the_same_placeholders() -> None:
    zh, en = catalog("zh"), catalog("en")
    differ = {
        key: (placeholders(zh[key]), placeholders(en[key]))
        for key in zh
        if placeholders(zh[key]) != placeholders(en.get(key, ""))
    }
    assert not differ, differ


def test_every_key_the_console_uses_is_in_the_catalog() -> None:
    keys = set(catalog("zh"))
    used: dict[str, str] = {}
    for source in SOURCES:
        for key in USED.findall(source.read_text(encoding="utf-8")):
            used.setdefault(key, source.name)
    unknown = {key: where for key, where in used.items() if key not in keys}
    assert not unknown, f"keys used but not in the catalog: {unknown}"
    prefixes = set()
    for source in SOURCES:
        prefixes |= set(PREFIXES.findall(source.read_text(encoding="utf-8")))
    empty = sorted(p for p in prefixes if not any(k.startswith(f"{p}.") for k in keys))
    assert not empty, f"families named in the code with no key in the catalog: {empty}"


@pytest.mark.parametrize(
    ("family", "values"),
    [
        ("stage", list(Stage)),
        ("grade", list(Grade)),
        ("role", list(Role)),
        ("intake", list(IntakeChannel)),
        ("channel", list(PublicationChannel)),
        ("evidence", list(EvidenceKind)),
        ("draft", list(DraftStatus)),
        ("post", list(PostStatus)),
        ("light", list(Light)),
        ("deadline", list(DeadlineKey)),
    ],
)
def test_every_enumerated_value_has_a_name(family: str, values: list[str]) -> None:
    missing = [v for v in values if not i18n.has(f"{family}.{v}")]
    assert not missing, f"{family}: {missing}"


def test_texts_times_and_durations_read_in_the_readers_language() -> None:
    assert i18n.t("work.approve", "zh", version=2, step="审定") == "第 2 稿待您审定（审定）"
    assert i18n.t("work.approve", "en", version=2, step="x") == "Draft v2 awaits your approval (x)"
    assert i18n.t("no.such.key", "en") == "no.such.key"
    moment = datetime(2026, 12, 1, 4, 30, tzinfo=UTC)
    assert i18n.when(moment) == "2026-12-01 12:30（北京时间）"
    assert i18n.when(moment, "en") == "2026-12-01 12:30 (Beijing time)"
    late = timedelta(days=1, hours=2, minutes=5)
    assert i18n.span(late, "zh", "working") == "1 天 2 小时 05 分（工作时间）"
    assert i18n.span(late, "en") == "1 d 2 h 05 min (calendar time)"


def test_the_readers_language_from_accept_language() -> None:
    assert i18n.negotiate("en-GB,en;q=0.9,zh;q=0.8") == "en"
    assert i18n.negotiate("zh-CN,zh;q=0.9,en;q=0.8") == "zh"
    assert i18n.negotiate("fr-FR,en;q=0.5") == "en"
    assert i18n.negotiate("fr-FR") == "zh"
    assert i18n.negotiate(None) == "zh"
    assert i18n.negotiate("en;q=0.1,zh;q=0.2") == "zh"
    assert i18n.negotiate("en;q=bogus") == "zh"


def test_a_message_kept_as_data_renders_in_the_readers_language() -> None:
    from yuqing.i18n.render import Message, RosterNames, render
    from yuqing.roster import load_roster

    names = RosterNames(load_roster(ROOT / "config" / "roster.toml"))
    message = Message(
        key="clock.responsible", params={"unit": "xixiangtang-branch", "person": "huang.wei"}
    )
    assert render(message, "zh", names) == "责任单位：西乡塘分局；责任人：黄伟 (西乡塘分局局长)"
    assert render(message, "en", names).startswith("Responsible: Xixiangtang branch; 黄伟")
    due = {"key": "clock.due", "params": {"when": "x"}}
    assert render(due, "en") == "due x"
    # A parameter the text needs but the record lacks still shows what there is.
    assert render({"key": "clock.due", "params": {}}, "zh").startswith("截止")


def test_the_compiled_catalogs_are_compiled_from_todays_po_files() -> None:
    """The .mo files read at run time say what the .po files say (else: python -m
    yuqing.i18n.compile)."""
    from yuqing.i18n.compile import compiled

    for lang in i18n.LANGUAGES:
        source = (i18n.CATALOG_DIR / f"{lang}.po").read_bytes()
        assert i18n._compiled(lang, source) is not None, f"{lang}.mo is stale: compile it"
        assert (i18n.CATALOG_DIR / f"{lang}.mo").read_bytes() == compiled(lang)


def test_a_said_text_reads_english_and_shows_in_the_readers_language() -> None:
    what = i18n.Said("api.what.incident", name="demo-1")
    said = i18n.Said("api.not_found", what=what)
    assert said == "incident demo-1 does not exist"  # in logs and exceptions
    assert said.in_("zh") == "事件 demo-1不存在"
    assert i18n.text_in(said, "en") == str(said) and i18n.text_in("plain", "zh") == "plain"


def test_every_command_line_help_is_in_the_catalog_as_the_code_says_it() -> None:
    """Each command's and parameter's help has Chinese, and the English kept in the catalog
    is the English in the code (one text, not two that drift apart)."""
    import typer

    from yuqing.cli import app

    group = typer.main.get_command(app)
    en = catalog("en")
    assert en["cli.yuqing"] == group.help
    lacking, drifted = [], []
    for name, command in group.commands.items():  # type: ignore[attr-defined]
        said = {f"cli.{name}": command.help}
        for param in command.params:
            if getattr(param, "help", None):
                own, shared = f"cli.{name}.{param.name}", f"cli.opt.{param.name}"
                said[own if own in en or en.get(shared) != param.help else shared] = param.help
        for key, text in said.items():
            if key not in en:
                lacking.append(key)
            elif en[key] != text:
                drifted.append(key)
    assert not lacking, f"help without a catalog entry: {lacking}"
    assert not drifted, f"catalog English differs from the code's: {drifted}"


def test_times_in_a_plain_trail_line_read_in_beijing_time() -> None:
    """Lines kept as text (before messages) show their UTC stamps as Beijing time, labelled."""
    from yuqing.i18n.render import local_times

    line = "首报: due 2026-12-01T06:30+00:00"
    assert local_times(line, "zh") == "首报: due 2026-12-01 14:30（北京时间）"
    assert local_times(line, "en") == "首报: due 2026-12-01 14:30 (Beijing time)"
    assert local_times("no time here, nor 2026-12-01", "zh") == "no time here, nor 2026-12-01"


def test_the_audit_read_from_a_history_shows_each_lines_message_in_the_readers_language() -> None:
    """`yuqing audit` reads the trail from the history's record_trail inputs: a line kept as a
    message reads in the reader's language, not as its English detail."""
    import json as json_

    from temporalio.api.history.v1 import HistoryEvent

    from yuqing.audit.history import RunHistory, recorded_trail
    from yuqing.audit.timeline import render

    entry = {
        "at": "2026-12-01T06:30:00+00:00",
        "kind": "deadline_waived",
        "detail": "report_important waived: merged with another incident",
        "message": {
            "key": "msg.deadline_waived",
            "params": {"deadline": "首报", "why": "已与另一事件合并"},
        },
    }
    request = {"workflow_id": "incident-x", "first_seq": 0, "entries": [entry]}
    event = HistoryEvent()
    scheduled = event.activity_task_scheduled_event_attributes
    scheduled.activity_type.name = "record_trail"
    payload = scheduled.input.payloads.add()
    payload.metadata["encoding"] = b"json/plain"
    payload.data = json_.dumps(request).encode()

    [line] = recorded_trail(RunHistory("incident-x", [event]))
    assert line.message == entry["message"]
    shown = render("x", [line], "text", "zh")
    assert "首报：免除（已与另一事件合并）" in shown, shown
    assert "waived: merged" not in shown
