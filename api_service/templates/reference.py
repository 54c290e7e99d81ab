"""What a templated send names: the template and its model. Built by the JSON adapter, read by rendering."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class TemplateReference:
    """A templated message's template (by id, else by alias) and model; `pipeline.render` fills the message from it."""

    template_id: int | None
    alias: str | None
    model: dict[str, Any]
    inline_css: bool = True
