"""The Hugging Face Hub, seen from a machine that may be offline: offline mode, reachability
and the message that says what to do instead. Nothing in kdkit downloads unless asked for a
Hub name; when it is, these make the failure quick and clear."""

from __future__ import annotations

import os
import socket
import urllib.parse
from pathlib import Path

__all__ = ["hub_offline", "hub_reachable", "hub_help", "require_hub", "check_model_available"]

_HUB_HELP = (
    "Without network access: use the offline `cpu` preset (`kdkit distill-t5 --preset cpu`, "
    "synthetic tasks and small models built locally), or pass a local directory saved with "
    "save_pretrained (`--teacher DIR --student DIR`) and local data files "
    "(load_text_pairs('json', data_files=...)). To use the Hub, run once with network access "
    "(files are cached) and set HF_HUB_OFFLINE=1 to reuse the cache offline."
)


def hub_offline() -> bool:
    """True when Hugging Face's offline mode is on (``HF_HUB_OFFLINE=1`` or
    ``TRANSFORMERS_OFFLINE=1``), read now, not only when ``huggingface_hub`` was imported."""
    import huggingface_hub.constants as hub_constants

    env = any(
        os.environ.get(var, "").strip().upper() in ("1", "ON", "YES", "TRUE")
        for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )
    return env or bool(hub_constants.HF_HUB_OFFLINE)


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether a TCP connection to the Hub's endpoint opens within ``timeout`` seconds.

    The libraries would otherwise retry an unreachable Hub for ~30 s before giving up.
    With a proxy configured the direct probe says nothing, so it answers True.
    """
    import huggingface_hub.constants as hub_constants

    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return True
    url = urllib.parse.urlparse(hub_constants.ENDPOINT)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname, port), timeout=timeout):
            return True
    except OSError:
        return False


def hub_help(name: str, kind: str, err: BaseException | None = None) -> str:
    """The message for a ``kind`` ("model", "dataset") named ``name`` that could not be loaded:
    why (offline mode or no route to the Hub, and ``err``'s first line) and what to do."""
    why = "offline mode is on (HF_HUB_OFFLINE=1)" if hub_offline() else "the Hub is unreachable"
    cause = f" ({type(err).__name__}: {str(err).splitlines()[0][:200]})" if err else ""
    return (
        f"Cannot load the {kind} {name!r}: it is not a local path, it is not in the local "
        f"cache, and {why}{cause}. {_HUB_HELP}"
    )


def require_hub(name: str, kind: str) -> None:
    """Raise ``OSError(hub_help(...))`` at once when the Hub is not reachable and offline mode
    is off (in offline mode the caller reads the local cache instead)."""
    if not hub_offline() and not hub_reachable():
        raise OSError(hub_help(name, kind))


def check_model_available(name: str) -> None:
    """Raise ``OSError(hub_help(...))`` now unless the model ``name`` can be loaded: a local
    path, or a Hub name that is reachable or already in the local cache."""
    if Path(name).exists() or (not hub_offline() and hub_reachable()):
        return
    from huggingface_hub import try_to_load_from_cache

    if not isinstance(try_to_load_from_cache(name, "config.json"), str):
        raise OSError(hub_help(name, "model"))
