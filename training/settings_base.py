"""What the service's and the retraining job's settings share: typed ``EPIDOSE_*`` variables (pydantic-settings).

Each settings class names its variables once (``EPIDOSE_`` + the field name, or the field's alias),
documents each field in the docstring under it (the configuration reference is generated from them),
and reads them, by exact name, from a mapping handed in by the caller, so tests build settings from
plain dicts and constructing a class directly reads no environment. Values that cannot be used stop the start with one
line naming the variable, the value's problem, and for a choice the valid ones and the closest.
"""

from __future__ import annotations

import difflib
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Final, Literal, get_args, get_origin

from pydantic import ValidationError, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from fhir_mapping.errors import EpidoseError

PREFIX: Final = "EPIDOSE_"


class SettingsError(EpidoseError, ValueError):
    """An ``EPIDOSE_*`` variable is unknown or has a value that cannot be used; the message names it."""


def default_data_dir(env: Mapping[str, str]) -> Path:
    """The service's data folder: EPIDOSE_DATA_DIR, else $XDG_DATA_HOME/epidose or ~/.local/share/epidose."""
    explicit = (env.get("EPIDOSE_DATA_DIR") or "").strip()
    if explicit:
        return Path(explicit).expanduser()
    base = env.get("XDG_DATA_HOME") or str(Path(env.get("HOME") or Path.home()) / ".local" / "share")
    return Path(base) / "epidose"


def closest(word: str, choices: typing.Iterable[str]) -> str | None:
    """The choice nearest to ``word`` in spelling (difflib), when one is near enough to be a typo."""
    found = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return found[0] if found else None


class EnvSettings(BaseSettings):
    """Frozen, typed settings read from ``EPIDOSE_*`` variables by :meth:`from_env`."""

    model_config = SettingsConfigDict(env_prefix=PREFIX, frozen=True, use_attribute_docstrings=True,
                                      populate_by_name=True, env_ignore_empty=True, extra="forbid")
    section: ClassVar[str] = ""
    """The heading of this class's table in the configuration reference."""

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
                                   env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
                                   file_secret_settings: PydanticBaseSettingsSource) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)  # the environment comes in through from_env only

    @model_validator(mode="before")
    @classmethod
    def _blank_is_unset(cls, values: Any) -> Any:
        """Surrounding spaces are dropped, and a blank value means the default (as an unset variable does)."""
        if not isinstance(values, dict):
            return values
        cleaned = {}
        for key, value in values.items():
            if isinstance(value, str):
                value = value.strip()
                if not value:
                    continue
            cleaned[key] = value
        return cleaned

    @classmethod
    def variables(cls) -> dict[str, str]:
        """{variable name: field name} for every field."""
        return {variable_of(cls, name): name for name in cls.model_fields}

    @classmethod
    def read(cls, env: Mapping[str, str], defaults: Mapping[str, Any] | None = None,
             overrides: Mapping[str, Any] | None = None) -> Any:
        """The settings from ``env``; ``defaults`` apply where a variable is unset, ``overrides`` always win."""
        given = {name: env[variable] for variable, name in cls.variables().items() if variable in env}
        values = {**(defaults or {}), **given, **(overrides or {})}
        try:
            return cls(**values)
        except ValidationError as error:
            raise SettingsError(describe(cls, error)) from None


def variable_of(cls: type[BaseSettings], name: str) -> str:
    """The environment variable of field ``name``: its alias, else EPIDOSE_ + the name in capitals."""
    alias = cls.model_fields[name].validation_alias
    return alias if isinstance(alias, str) else PREFIX + name.upper()


def choices_of(annotation: Any) -> tuple[str, ...]:
    """The values of a ``Literal`` (also inside ``Optional`` or a tuple of them); () for any other type."""
    if get_origin(annotation) is Literal:
        return tuple(str(arg) for arg in get_args(annotation))
    for arg in get_args(annotation):
        found = choices_of(arg)
        if found:
            return found
    return ()


def describe(cls: type[BaseSettings], error: ValidationError) -> str:
    """One line for every problem, each naming its variable; values are shown only for choices and numbers."""
    variables = {name: variable_of(cls, name) for name in cls.model_fields}
    by_alias = {variable: name for name, variable in variables.items()}
    parts = []
    for problem in error.errors(include_url=False):
        key = str(problem["loc"][0]) if problem["loc"] else ""
        name = by_alias.get(key, key)
        variable = variables.get(name, key)
        message = str(problem["msg"]).removeprefix("Value error, ").replace("Input should be", "must be")
        choices = choices_of(cls.model_fields[name].annotation) if name in cls.model_fields else ()
        if choices and problem["type"] == "literal_error":
            given = str(problem.get("input"))
            hint = closest(given, choices)
            parts.append(f"{variable}={given!r} is not a valid choice; choose one of {', '.join(choices)}"
                         + (f" (did you mean {hint}?)" if hint else ""))
        elif problem["type"] == "extra_forbidden":
            parts.append(f"{variable} is not a setting")
        else:
            parts.append(f"{variable}: {message}")
    return "; ".join(parts)


def refuse_unknown(env: Mapping[str, str], known: typing.Iterable[str]) -> None:
    """Stop when an ``EPIDOSE_*`` variable is none of ``known``, naming the closest known one (a typo)."""
    valid = set(known)
    unknown = sorted(name for name in env if name.startswith(PREFIX) and name not in valid)
    if not unknown:
        return
    parts = []
    for name in unknown:
        hint = closest(name, valid)
        parts.append(f"{name} is not an epidose setting" + (f" (did you mean {hint}?)" if hint else ""))
    raise SettingsError("; ".join(parts) + "; `epidose settings` lists every variable")
