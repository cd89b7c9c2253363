"""``load_policy(spec)``: a policy from a server address or a checkpoint file.

``ws://HOST:PORT`` (or ``wss://``) connects to an openpi server,
``http(s)://HOST:PORT/act`` talks to an OpenVLA deploy server, anything else is
a checkpoint file loaded by the loader registered for its suffix.

Checkpoint loaders are ``"module:function"`` targets imported only when a file
of that kind is loaded (the torch-based built-in policy must not be imported
otherwise); ``function(path, **options)`` returns a :class:`~policies.base.Policy`.
Packages add theirs to :data:`FILE_LOADERS` or call :func:`register_file_loader`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from policies.base import Policy

FILE_LOADERS: dict[str, str | Callable[..., Policy]] = {".pt": "policies.builtin.checkpoint:load"}
"""Checkpoint suffix (``".pt"``) -> loader, as ``"module:function"`` or a callable."""


class PolicyLoadError(ValueError):
    """A policy spec that cannot be loaded; the message names the fix."""


def register_file_loader(suffix: str, loader: str | Callable[..., Policy]) -> None:
    if not suffix.startswith("."):
        raise ValueError(f"a checkpoint suffix starts with a dot, e.g. '.pt', not {suffix!r}")
    FILE_LOADERS[suffix.lower()] = loader


def load_policy(spec: str, **options: Any) -> Policy:
    """The policy ``spec`` names; ``options`` go to the client or loader (e.g. ``action_kind``,
    ``mapping`` and ``timeout_s`` for an openpi server). A server is connected to before returning."""
    if spec.startswith(("ws://", "wss://")):
        from policies.openpi_client import OpenPIClient

        client = OpenPIClient(spec, **options)
        client.connect()
        return client
    if spec.startswith(("http://", "https://")):
        from policies.openvla_client import OpenVLAClient

        return OpenVLAClient(spec, **options)
    path = Path(spec)
    if not path.is_file():
        raise PolicyLoadError(f"{spec}: no such checkpoint file (a server is ws://HOST:PORT for openpi or "
                              "http://HOST:PORT/act for OpenVLA)")
    loader = FILE_LOADERS.get(path.suffix.lower())
    if loader is None:
        known = ", ".join(sorted(FILE_LOADERS)) or "none registered"
        raise PolicyLoadError(f"{path.name}: no policy loader for {path.suffix or 'suffix-less'} files "
                              f"(checkpoint kinds: {known})")
    if isinstance(loader, str):
        module, _, name = loader.partition(":")
        loader = getattr(importlib.import_module(module), name)
    return loader(path, **options)
