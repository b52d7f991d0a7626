"""The org directory (org_directory.yml): users, ProCall groups with leaders, deputies and members,
private lines, analysts and admins. Loaded, validated, refused with errors that name file and entry."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from callsight.site.yaml_config import ConfigError, _format, _read_yaml, _Strict

USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


# ---- org directory -------------------------------------------------------------------------------
class User(_Strict):
    username: str
    name: str
    email: str | None = None
    locale: Literal["de", "en"] | None = None  # language of the mails to this user; unset: the site's

    @field_validator("username")
    @classmethod
    def _username(cls, v: str) -> str:
        if not USERNAME_RE.match(v):
            raise ValueError(f"username {v!r} must be lower case letters, digits, '.', '_' or '-' (max 64 characters)")
        return v


class Group(_Strict):
    name: str = Field(min_length=1, max_length=100)
    leaders: list[str] = Field(default_factory=list)
    deputies: list[str] = Field(default_factory=list)
    members: list[str] = Field(default_factory=list)
    journal_visible_to_group: bool = False
    journal_visible_to_leader: bool = True


class Directory(_Strict):
    users: list[User]
    groups: list[Group] = Field(default_factory=list)
    private_lines: list[str] = Field(default_factory=list)
    analysts: list[str] = Field(default_factory=list)
    admins: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _references(self) -> Directory:
        seen: set[str] = set()
        for i, user in enumerate(self.users):
            if user.username in seen:
                raise ValueError(f"users[{i}]: duplicate username {user.username!r}")
            seen.add(user.username)
        names: set[str] = set()
        for g in self.groups:
            if g.name in names:
                raise ValueError(f"groups: duplicate group name {g.name!r}")
            names.add(g.name)
            for role in ("leaders", "deputies", "members"):
                for u in getattr(g, role):
                    if u not in seen:
                        raise ValueError(f"group {g.name!r} {role}: unknown user {u!r}")
        for role in ("analysts", "admins"):
            for u in getattr(self, role):
                if u not in seen:
                    raise ValueError(f"{role}: unknown user {u!r}")
        return self

    @property
    def usernames(self) -> list[str]:
        return [u.username for u in self.users]


def load_directory(path: Path) -> Directory:
    data = _read_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping with 'users' and 'groups'")
    try:
        return Directory.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format(path, exc)) from None
