"""The values a mapping's ``run_value:`` fields get in one run: today the callback address, with the token that
tells the receiver which run a provider's callback belongs to (flows/http/callbacks.py)."""
from __future__ import annotations

import re
from collections.abc import Mapping
from secrets import token_urlsafe

from ..errors import ConfigError
from ..http.callbacks import check_callback_address
from ..mapping.model import MappingFile

__all__ = ["run_values"]


def run_values(m: MappingFile, env: Mapping[str, str], *, base_url: str,
               in_process: str | None) -> tuple[dict[str, str | None], str | None]:
    """The values ``run_value:`` fields get in this run, and the callback token (None when not used).
    ``in_process``: the address of a callback receiver serving this run (RunOptions.callback_url)."""
    wanted = m.run_value_paths()
    if "callback_url" not in wanted.values():
        return {}, None
    var = f"{m.env_prefix}_CALLBACK_URL"
    base = (env.get(var) or in_process or "").strip().rstrip("/")
    if not base:
        paths = [p for p, name in wanted.items() if name == "callback_url"]
        if any(m.fields[p].required for p in paths):
            raise ConfigError(f"fields.{paths[0]} needs this run's callback address: set {var} to the public URL "
                              f"of `booking-import callbacks`, or run with --wait-callbacks SECONDS to receive "
                              f"the callbacks in-process")
        return {"callback_url": None}, None
    if not re.match(r"^https?://[^\s/]+", base):
        raise ConfigError(f"{var}={base!r} is not an http(s) URL")
    check_callback_address(m, env, base_url=base_url, in_process=in_process)
    token = token_urlsafe(24)
    return {"callback_url": f"{base}/{m.provider}/{token}"}, token
