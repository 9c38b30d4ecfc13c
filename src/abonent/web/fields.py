"""Request models and parameters that refuse what the databases cannot store.

Every JSON body of the HTTP APIs is an :class:`ApiModel`: any string in it (nested in
lists and objects too) with a NUL character or a lone surrogate is a 422 in the API's
error format, naming the field, on SQLite and PostgreSQL alike, instead of a 500 on
one and a stored oddity on the other (see ``core/text.py``). For a single query or
path parameter, annotate it as :data:`Text`; the paths and query strings of every
request are checked by ``errors.install`` as well. Keep ``max_length`` within the
column the value lands in (``db/models.py``): PostgreSQL refuses longer strings,
SQLite keeps them.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, field_validator

from abonent.core.text import problem


def first_problem(value: Any) -> str | None:
    """Why some string inside ``value`` cannot be stored, or None."""
    if isinstance(value, str):
        return problem(value)
    if isinstance(value, dict):
        items: list[Any] = [*value.keys(), *value.values()]
    elif isinstance(value, list | tuple | set | frozenset):
        items = list(value)
    elif isinstance(value, BaseModel):
        return None  # a nested ApiModel checked its own fields
    else:
        return None
    for item in items:
        reason = first_problem(item)
        if reason is not None:
            return reason
    return None


def _storable(value: str) -> str:
    reason = problem(value)
    if reason is not None:
        raise ValueError(reason)
    return value


Text = Annotated[str, AfterValidator(_storable)]
"""A string parameter the databases can store (no NUL, no lone surrogates)."""


class ApiModel(BaseModel):
    """The base of every request body: no field may hold text the databases refuse."""

    @field_validator("*", mode="after")
    @classmethod
    def _storable_strings(cls, value: Any) -> Any:
        reason = first_problem(value)
        if reason is not None:
            raise ValueError(reason)
        return value
