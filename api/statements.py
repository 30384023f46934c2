"""The public page of each published statement, `/statements/<incident_id>-v<version>`.

Rendered from the `publications` table, the record of what went out in the bureau's name:
the text, where and when it was published, its content hash, and the approval chain that let
it out. Every value is escaped: a statement or a comment is text, never markup.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import datetime
from html import escape
from typing import Any
from urllib.parse import urlsplit

import asyncpg
from pydantic import TypeAdapter

from yuqing.roster import Roster
from yuqing.state import ApprovalRecord
from yuqing.working_time import SHANGHAI

SLUG = re.compile(r"^(?P<incident_id>[A-Za-z0-9][A-Za-z0-9._-]{0,63})-v(?P<version>[1-9]\d{0,8})$")

CHANNELS = {
    "website": "门户网站 website",
    "weibo": "政务微博 Weibo",
    "wechat": "微信公众号 WeChat",
    "press": "新闻发布 press",
}
STEPS = {
    "unit_head": "单位主要负责人签署 · unit head signs",
    "section_head": "业务股室主要负责人审核 · section head reviews",
    "publicity_lead": "新闻宣传分管领导审定 · publicity lead approves",
    "leadership_group": "领导小组审定 · leading group approves",
}
DECISIONS = {"approve": "同意 approved", "reject": "退回 returned"}

# A content-security policy that allows this page's own style and nothing else: defence in
# depth behind the escaping.
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
    "X-Content-Type-Options": "nosniff",
}

_APPROVALS = TypeAdapter(list[ApprovalRecord])


@dataclass(frozen=True)
class Channel:
    channel: str
    address: str
    published_at: datetime


@dataclass(frozen=True)
class Statement:
    incident_id: str
    version: int
    text: str
    content_sha256: str
    channels: list[Channel]
    approvals: list[ApprovalRecord]

    @property
    def hash_matches(self) -> bool:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest() == self.content_sha256


def parse_slug(slug: str) -> tuple[str, int] | None:
    match = SLUG.match(slug)
    if match is None:
        return None
    return match["incident_id"], int(match["version"])


async def load_statement(pool: asyncpg.Pool, incident_id: str, version: int) -> Statement | None:
    rows = await pool.fetch(
        "SELECT channel, address, content, content_sha256, approvals, published_at"
        " FROM publications WHERE incident_id = $1 AND draft_version = $2"
        " ORDER BY published_at, channel",
        incident_id,
        version,
    )
    if not rows:
        return None
    first = rows[0]
    approvals = _APPROVALS.validate_python(_json(first["approvals"]))
    return Statement(
        incident_id=incident_id,
        version=version,
        text=first["content"],
        content_sha256=first["content_sha256"],
        channels=[Channel(r["channel"], r["address"], r["published_at"]) for r in rows],
        approvals=sorted(approvals, key=lambda a: a.at),
    )


def _json(value: Any) -> Any:
    # asyncpg hands jsonb over as text unless a codec is set on the connection.
    return json.loads(value) if isinstance(value, str | bytes) else value


def _when(moment: datetime) -> str:
    return moment.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M") + " (北京时间)"


def _link(address: str) -> str:
    # Only web addresses become links; anything else is shown as text.
    if urlsplit(address).scheme in ("http", "https"):
        return f'<a href="{escape(address)}">{escape(address)}</a>'
    return escape(address)


def render_statement(statement: Statement, roster: Roster) -> str:
    paragraphs = "".join(
        f"<p>{escape(line)}</p>" for line in statement.text.splitlines() if line.strip()
    )
    channels = "".join(
        f"<tr><td>{escape(CHANNELS.get(c.channel, c.channel))}</td>"
        f"<td>{escape(_when(c.published_at))}</td><td>{_link(c.address)}</td></tr>"
        for c in statement.channels
    )
    chain = "".join(_approval_row(a, roster) for a in statement.approvals)
    check = (
        "与正文一致 · matches the text above"
        if statement.hash_matches
        else "与正文不一致 · DOES NOT match the text above"
    )
    title = f"情况通报 · Statement {statement.incident_id} v{statement.version}"
    return _page(
        title,
        f"""<article>
<h1>情况通报 <small>Statement</small></h1>
<p class="meta">{escape(statement.incident_id)} · 第 {statement.version} 稿 · version \
{statement.version}</p>
<div class="text">{paragraphs}</div>
</article>
<section>
<h2>发布 · Published</h2>
<table><thead><tr><th>渠道 · channel</th><th>时间 · time</th><th>地址 · address</th></tr></thead>
<tbody>{channels}</tbody></table>
<p class="hash">SHA-256 <code>{escape(statement.content_sha256)}</code> — {escape(check)}</p>
</section>
<section>
<h2>审批 · Approval chain</h2>
<table><thead><tr><th>环节 · step</th><th>审批人 · approver</th><th>意见 · decision</th>\
<th>时间 · time</th><th>说明 · comment</th></tr></thead>
<tbody>{chain}</tbody></table>
</section>""",
    )


def _approval_row(approval: ApprovalRecord, roster: Roster) -> str:
    person = roster.person(approval.approver_id)
    name = f"{person.name} ({approval.approver_id})" if person else approval.approver_id
    return (
        f"<tr><td>{escape(STEPS.get(approval.role, approval.role))}</td>"
        f"<td>{escape(name)}</td>"
        f"<td>{escape(DECISIONS.get(approval.decision, approval.decision))}</td>"
        f"<td>{escape(_when(approval.at))}</td><td>{escape(approval.comment)}</td></tr>"
    )


def render_not_found(slug: str) -> str:
    return _page(
        "未找到 · Not found",
        f"<h1>未找到该通报 <small>No such statement</small></h1>"
        f"<p>没有已发布的通报 <code>{escape(slug)}</code>。"
        f" No statement has been published as <code>{escape(slug)}</code>.</p>",
    )


def render_unavailable() -> str:
    return _page(
        "暂时无法显示 · Unavailable",
        "<h1>暂时无法显示 <small>Temporarily unavailable</small></h1>"
        "<p>通报记录暂时无法读取，请稍后再试。"
        " The record of statements cannot be read just now; please try again shortly.</p>",
    )


def _page(title: str, body: str) -> str:
    return f"""<!doctype html>
<html lang="zh-CN">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)}</title>
<style>
body {{ font-family: "PingFang SC", "Noto Sans CJK SC", "Microsoft YaHei", sans-serif;
  max-width: 52rem; margin: 2rem auto; padding: 0 1rem; line-height: 1.7; color: #222; }}
h1 small, h2 small {{ font-weight: normal; color: #666; font-size: 60%; }}
.meta, .hash {{ color: #555; font-size: 90%; }}
.text {{ border-left: 4px solid #b22; padding-left: 1rem; margin: 1.5rem 0; }}
table {{ border-collapse: collapse; width: 100%; font-size: 92%; }}
th, td {{ border-bottom: 1px solid #ddd; padding: .4rem .5rem; text-align: left;
  vertical-align: top; }}
code {{ word-break: break-all; }}
</style>
</head>
<body>
{body}
</body>
</html>
"""
