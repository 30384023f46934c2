"""The channels file (TOML, `YUQING_CHANNELS`): where notices and statements leave the building.

It is validated in full when the worker starts, like the policy and the roster: a malformed
entry stops start-up with an error naming it, rather than a notice failing mid-incident.
Secrets (the SMTP password, a DingTalk signing secret, a gateway token) are never in the file:
it names the environment variables that hold them, and a variable that is not set is refused
at start-up too.
"""

from __future__ import annotations

import os
from email.utils import parseaddr
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from yuqing.models import PublicationChannel
from yuqing.roles import Role
from yuqing.toml_files import load_toml_model

# The kinds of notice the incident and post workflows send (yuqing.decisions, yuqing.decider);
# a webhook may be limited to some of them, and a misspelt kind is refused, not ignored.
NoticeKind = Literal["report", "draft_returned", "major_notice", "reminder", "escalation"]


# The most one copy may take: one HTTP request, or one e-mail with the SMTP session opened for
# it. A delivery activity has a 30 s heartbeat timeout, heartbeats after each copy from 3 s into
# the attempt on (yuqing.channels.pulse), and runs for at most 2 minutes (workflows/delivery.py):
# 3 s, then a copy and its overrun (OVERRUN_SECONDS), must leave 5 s of the 30 for the database.
MAX_DEADLINE_SECONDS = 20.0


def _deadline(description: str) -> Any:
    return Field(default=10.0, gt=0, le=MAX_DEADLINE_SECONDS, description=description)


class ChannelsError(ValueError):
    """The channels file cannot be used; the message names the file and the entry."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"{value!r} is not an http(s) URL")
    return value


def _env_name(value: str | None) -> str | None:
    if value is not None and not os.environ.get(value):
        raise ValueError(f"environment variable {value} is not set")
    return value


class SmtpSecurity(StrEnum):
    none = "none"  # a relay inside the bureau's network
    starttls = "starttls"  # upgrade on the submission port (587)
    tls = "tls"  # TLS from the first byte (465)


class SmtpServer(_Strict):
    """The bureau's mail server, through which every e-mail notice is submitted."""

    host: str = Field(min_length=1)
    port: int = Field(default=25, ge=1, le=65535)
    from_address: str
    from_name: str = ""
    security: SmtpSecurity = SmtpSecurity.none
    username: str | None = None
    password_env: str | None = None
    timeout_seconds: float = _deadline(
        "the whole of one e-mail: connecting, TLS and login for the first, then MAIL to DATA"
    )

    @field_validator("from_address")
    @classmethod
    def _address(cls, value: str) -> str:
        if "@" not in parseaddr(value)[1]:
            raise ValueError(f"{value!r} is not an e-mail address")
        return value

    @field_validator("password_env")
    @classmethod
    def _password_set(cls, value: str | None) -> str | None:
        return _env_name(value)

    @model_validator(mode="after")
    def _login_complete(self) -> SmtpServer:
        if (self.username is None) != (self.password_env is None):
            raise ValueError("give both username and password_env to log in, or neither")
        return self

    @property
    def password(self) -> str | None:
        return os.environ.get(self.password_env) if self.password_env else None

    @property
    def domain(self) -> str:
        return parseaddr(self.from_address)[1].rpartition("@")[2]


class RobotKind(StrEnum):
    # Both take {"msgtype": "text", "text": {"content": ...}} and answer {"errcode": 0, ...}.
    wecom = "wecom"  # 企业微信群机器人
    dingtalk = "dingtalk"  # 钉钉自定义机器人


class Webhook(_Strict):
    """A chat robot: which notices it posts is decided by the recipients' roles and the kind."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")
    kind: RobotKind
    # A robot's URL holds its key: give it here, or name the variable that holds it.
    url: str | None = None
    url_env: str | None = None
    secret_env: str | None = Field(
        default=None, description="DingTalk 加签: the variable holding the robot's secret"
    )
    roles: list[Role] = Field(
        default_factory=list, description="post notices to these roles; empty: to anyone"
    )
    kinds: list[NoticeKind] = Field(
        default_factory=list, description="post these kinds of notice; empty: every kind"
    )
    timeout_seconds: float = _deadline("the whole of one request, connecting to the last byte")

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return _http_url(value) if value is not None else None

    @field_validator("url_env")
    @classmethod
    def _url_set(cls, value: str | None) -> str | None:
        if _env_name(value) is not None:
            _http_url(os.environ[value or ""])
        return value

    @field_validator("secret_env")
    @classmethod
    def _secret_set(cls, value: str | None) -> str | None:
        return _env_name(value)

    @model_validator(mode="after")
    def _consistent(self) -> Webhook:
        if (self.url is None) == (self.url_env is None):
            raise ValueError("give exactly one of url or url_env")
        if self.secret_env is not None and self.kind is not RobotKind.dingtalk:
            raise ValueError("secret_env signs DingTalk requests; a WeCom robot takes none")
        return self

    @property
    def endpoint(self) -> str:
        return self.url or os.environ[self.url_env or ""]

    @property
    def secret(self) -> str | None:
        return os.environ.get(self.secret_env) if self.secret_env else None

    def wants(self, kind: str, roles: set[Role]) -> bool:
        return (not self.kinds or kind in self.kinds) and (
            not self.roles or bool(roles.intersection(self.roles))
        )


class Gateway(_Strict):
    """A publishing gateway for one channel (Weibo, WeChat, press): it takes the statement."""

    url: str
    token_env: str | None = Field(
        default=None, description="the variable holding a bearer token for the gateway"
    )
    timeout_seconds: float = _deadline("the whole of one request, connecting to the last byte")

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return _http_url(value)

    @field_validator("token_env")
    @classmethod
    def _token_set(cls, value: str | None) -> str | None:
        return _env_name(value)

    @property
    def token(self) -> str | None:
        return os.environ.get(self.token_env) if self.token_env else None


class Channels(_Strict):
    smtp: SmtpServer | None = None
    webhooks: list[Webhook] = Field(default_factory=list)
    publications: dict[PublicationChannel, Gateway] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _consistent(self) -> Channels:
        names = [w.name for w in self.webhooks]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"webhook name {twice[0]!r} appears twice")
        if PublicationChannel.website in self.publications:
            raise ValueError(
                "publications.website: the website serves statements from the publications"
                " table itself; it takes no gateway"
            )
        return self

    @property
    def configured(self) -> bool:
        """Whether any notice can leave the building at all."""
        return self.smtp is not None or bool(self.webhooks)

    def describe(self) -> list[str]:
        """What is configured, for the start-up log (never a secret, nor a robot's URL)."""
        found = [f"email via {self.smtp.host}:{self.smtp.port}"] if self.smtp else []
        found += [f"{hook.kind} robot {hook.name}" for hook in self.webhooks]
        found += [f"{channel} gateway" for channel in self.publications]
        return found or ["none: notices and statements are recorded only"]


# With no file, notices and statements are recorded in PostgreSQL only, as before channels.
NO_CHANNELS = Channels()


def load_channels(path: Path | None) -> Channels:
    """The channels in `path`; none (record only) when no file is configured."""
    if path is None:
        return NO_CHANNELS
    return load_toml_model(path, Channels, what="channels", error=ChannelsError, describe=_describe)


def _describe(err: ValidationError, data: dict[str, Any]) -> str:
    lines = []
    for problem in err.errors():
        loc = list(problem["loc"])
        where = ".".join(str(part) for part in loc) or "(top level)"
        # A webhook is named by its name, not only by its place in the list.
        if len(loc) >= 2 and loc[0] == "webhooks" and isinstance(loc[1], int):
            entries = data.get("webhooks")
            entry = entries[loc[1]] if isinstance(entries, list) and loc[1] < len(entries) else {}
            name = entry.get("name") if isinstance(entry, dict) else None
            rest = ".".join(str(part) for part in loc[2:])
            where = f"webhooks[{loc[1]}]" + (f" ({name!r})" if name else "")
            where += f".{rest}" if rest else ""
        message = problem["msg"].removeprefix("Value error, ")
        lines.append(f"  {where}: {message}")
    return "\n".join(lines)
