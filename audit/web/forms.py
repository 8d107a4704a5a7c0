"""Form fields to service inputs: the same request models as the API, their errors as InvalidInput."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from audit.errors import InvalidInput

M = TypeVar("M", bound=BaseModel)


def split_list(text: str | None) -> list[str]:
    """`25, 59` or `25 59` -> ["25", "59"]."""
    return [part for part in (text or "").replace(",", " ").split() if part]


def pointers(text: str | None, field: str = "diagnosis_pointers") -> list[int]:
    out = []
    for part in split_list(text):
        if not (part.isascii() and part.isdigit()) or len(part) > 3:
            raise InvalidInput(field, f"{field}: {part!r} is not a line number")
        out.append(int(part))
    return out


def model(cls: type[M], data: dict[str, Any]) -> M:
    """Validate with the API's request model; the first problem is a 422 naming the field."""
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "form"
        raise InvalidInput(where, f"{where}: {first.get('msg', 'invalid value')}") from exc
