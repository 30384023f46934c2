"""Who is calling: a bearer token names one person of the roster, who then acts as themself.

The tokens file keeps only SHA-256 hashes, so reading it (or a backup of it) gives no token
away. The tokens file, the roster and the authorization file are read again when they change
on disk, so a new token, a new person or a new rule needs no restart.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

import structlog
from pydantic import BaseModel, ConfigDict, Field

from yuqing.authorization import DEFAULT_PATH, Authorization, ReadScope, load_authorization
from yuqing.roster import Person, Roster, load_roster
from yuqing.toml_files import load_toml_model

log = structlog.get_logger("yuqing.api")

T = TypeVar("T")


class TokensError(ValueError):
    """The tokens file cannot be used; the message names the file and what is wrong."""


class TokenEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    person: str = Field(min_length=1)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    note: str = ""


class Tokens(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    development_only: bool = False
    tokens: list[TokenEntry] = Field(default_factory=list)

    def person_for(self, token: str) -> str | None:
        digest = hash_token(token)
        found = None
        # Every entry is compared, in constant time each, so timing tells nothing of the hashes.
        for entry in self.tokens:
            if hmac.compare_digest(entry.sha256, digest):
                found = entry.person
        return found


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def load_tokens(path: Path) -> Tokens:
    tokens = load_toml_model(
        path, Tokens, what="tokens", error=TokensError, missing_hint=" (set YUQING_TOKENS)"
    )
    hashes = [entry.sha256 for entry in tokens.tokens]
    if len(set(hashes)) != len(hashes):
        raise TokensError(f"tokens file {path} gives one token to two entries")
    return tokens


class Reloading(Generic[T]):
    """A file's parsed content, parsed again when the file changes; the last good one is kept
    (and the problem logged) when a change does not parse, so a typo cannot lock everyone out."""

    def __init__(self, path: Path, load: Callable[[Path], T]) -> None:
        self._path = path
        self._load = load
        self._stamp = self._stat()
        self._value = load(path)

    def _stat(self) -> tuple[int, int] | None:
        try:
            stat = self._path.stat()
        except OSError:
            return None
        return (stat.st_mtime_ns, stat.st_size)

    def get(self) -> T:
        stamp = self._stat()
        if stamp is not None and stamp != self._stamp:
            self._stamp = stamp
            try:
                self._value = self._load(self._path)
                log.info("reloaded", path=str(self._path))
            except ValueError as err:
                log.error("kept the previous version: the new one is invalid", error=str(err))
        return self._value


@dataclass(frozen=True)
class Directory:
    """The roster, the tokens and the authorization, as the API reads them."""

    roster_file: Reloading[Roster]
    tokens_file: Reloading[Tokens]
    authorization_file: Reloading[Authorization]

    @classmethod
    def load(
        cls, roster_path: Path, tokens_path: Path, authorization_path: Path = DEFAULT_PATH
    ) -> Directory:
        directory = cls(
            Reloading(roster_path, load_roster),
            Reloading(tokens_path, load_tokens),
            Reloading(authorization_path, load_authorization),
        )
        roster, tokens = directory.roster, directory.tokens_file.get()
        unknown = sorted({e.person for e in tokens.tokens if roster.person(e.person) is None})
        if unknown:
            raise TokensError(
                f"tokens file {tokens_path} names {', '.join(unknown)}, "
                f"not in roster {roster_path} (version {roster.version})"
            )
        if tokens.development_only:
            log.warning(
                "development tokens in use: their plaintext is public; never expose this API",
                tokens=str(tokens_path),
            )
        return directory

    @property
    def roster(self) -> Roster:
        return self.roster_file.get()

    @property
    def authorization(self) -> Authorization:
        return self.authorization_file.get()

    def read_scope(self, person: Person) -> ReadScope:
        """The incidents `person` may see: what the API's reads, the console's list and its
        pages all ask (SPEC §8: the Office, the publicity lead and the leading group see every
        incident, a unit its own)."""
        return self.authorization.read_scope(self.roster, person.id)

    def report_refusal(self, person: Person, unit: str) -> str | None:
        """Why `person` may not report an incident for `unit`, or None if they may."""
        return self.authorization.report_refusal(self.roster, person.id, unit)

    def authenticate(self, token: str) -> Person | None:
        person_id = self.tokens_file.get().person_for(token)
        if person_id is None:
            return None
        # A person taken off the roster loses their token with it.
        return self.roster.person(person_id)
