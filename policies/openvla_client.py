"""Client of OpenVLA's REST deploy server: ``POST /act`` with a json_numpy body.

The body is ``{"image": HxWx3 uint8, "instruction": str, "unnorm_key": str | null}``
encoded with :mod:`policies.json_numpy`; the answer is the action (7 floats,
``[dx, dy, dz, droll, dpitch, dyaw, gripper]`` un-normalized with the
``unnorm_key`` statistics) — as a json_numpy object, or as a JSON string holding
json_numpy text when the request was double-encoded — or the string
``"error"`` (with HTTP 200) when the server failed.

OpenVLA predicts one action per call (no chunking) at ~6 Hz on a large GPU;
its deltas are in the units and at the rate of its training data, which the
rig's control rate must match (the loop applies an ``ee_delta`` action per tick).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from drivers.types import EE_DELTA_DIM
from policies import json_numpy
from policies.base import ActionKind, Policy, PolicyError, PolicyInfo
from policies.observation import Observation


class OpenVLAClient(Policy):
    def __init__(self, url: str, *, camera: str = "front", unnorm_key: str | None = None,
                 action_kind: ActionKind = ActionKind.EE_DELTA, action_dim: int = EE_DELTA_DIM,
                 timeout_s: float = 5.0) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"an OpenVLA server address looks like http://HOST:PORT/act, not {url!r}")
        self.url = url if parts.path not in ("", "/") else url.rstrip("/") + "/act"
        self.camera = camera
        self.unnorm_key = unnorm_key
        self.timeout_s = timeout_s
        self.info = PolicyInfo(action_kind, action_dim, 1, name=f"openvla {self.url}")

    def predict(self, observation: Observation) -> tuple[np.ndarray, Mapping[str, float]]:
        try:
            image = observation.stream(f"image:{self.camera}")
        except KeyError as exc:
            raise PolicyError(str(exc.args[0])) from None
        body = json_numpy.dumps({"image": image, "instruction": observation.task, "unnorm_key": self.unnorm_key})
        request = urllib.request.Request(self.url, data=body.encode(), method="POST",
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                text = response.read()
        except urllib.error.HTTPError as exc:
            raise PolicyError(f"OpenVLA server {self.url} answered HTTP {exc.code} {exc.reason}") from None
        except TimeoutError:
            raise PolicyError(f"OpenVLA server {self.url}: no answer within {self.timeout_s:g} s") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            if isinstance(reason, TimeoutError):
                raise PolicyError(f"OpenVLA server {self.url}: no answer within {self.timeout_s:g} s") from None
            raise PolicyError(f"cannot reach the OpenVLA server {self.url}: {reason}") from None
        return _parse_action(text, self.url), {}


def _parse_action(text: bytes, url: str) -> np.ndarray:
    """``[k, dim]`` actions from a response body (k = 1 for plain OpenVLA)."""
    try:
        answer: Any = json_numpy.loads(text)
        if isinstance(answer, str) and answer != "error":
            answer = json_numpy.loads(answer)  # the double-encoded form
    except (ValueError, TypeError) as exc:
        raise PolicyError(f"OpenVLA server {url} sent something that is not json_numpy ({exc})") from None
    if isinstance(answer, str):
        raise PolicyError(f'OpenVLA server {url} answered "error" (see the server log)')
    if isinstance(answer, dict) and "action" in answer:
        answer = answer["action"]
    try:
        actions = np.asarray(answer, dtype=np.float64)
    except (TypeError, ValueError):
        raise PolicyError(f"OpenVLA server {url} answered {json.dumps(answer)[:80]}, not an action") from None
    return actions[None, :] if actions.ndim == 1 else actions
