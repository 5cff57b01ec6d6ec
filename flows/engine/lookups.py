"""Fetching the provider lists a mapping's ``lookups`` declare (all pages), as name -> value tables."""
from __future__ import annotations

from typing import Any

from ..errors import ConfigError
from ..http.sender import ReadbackError, Sender
from ..mapping.paths import dig
from ..mapping.transforms import LookupTable

__all__ = [
    "fetch_lookup",
]


async def fetch_lookup(sender: Sender, name: str, spec: Any) -> LookupTable:
    """Every item of a provider list (all pages), as a name -> value table."""
    pairs: list[tuple[str, Any]] = []
    paging = spec.paging
    page = paging.first_page if paging else 0  # sent only when the list has pages
    for _ in range(paging.max_pages if paging else 1):
        params = dict(spec.params)
        if paging:
            params.update({paging.page_param: page, paging.size_param: paging.size})
        try:
            data = await sender.get_json(spec.path, params=params)
        except ReadbackError as exc:
            raise ConfigError(f"could not fetch the provider's {name} list from {spec.path} ({exc}); "
                              f"the names in the sheet cannot be checked, so nothing was sent") from None
        items = dig(data, spec.items) if spec.items else data
        if not isinstance(items, list):
            raise ConfigError(f"the provider's {name} list at {spec.path} has no list at "
                              f"{spec.items or 'the top level'!r}; "
                              f"check lookups.{name}.items in the mapping")
        pairs.extend((dig(i, spec.match), dig(i, spec.value)) for i in items if isinstance(i, dict))
        if not paging or len(items) < paging.size:
            break
        page += 1
    return LookupTable(name, pairs)
