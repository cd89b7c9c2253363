"""Feeding :class:`~ui.image_tile.ImageTile` widgets from the rig's cameras (GUI thread only).

Every view that shows live images (the Live tab, the Policy tab) reads the same
latest-frame slot of each camera: no view opens a reader of its own, and a tile
repaints only when its camera has a new frame.
"""

from __future__ import annotations

from drivers.base import Camera
from ui.image_tile import ImageTile


def show_latest(cam: Camera, tile: ImageTile, now: float) -> None:
    """Put ``cam``'s newest frame on ``tile`` (if it is new) and caption it: rate, size, or what is wrong."""
    frame = cam.latest()
    if frame is not None and frame.seq != tile.shown_seq:
        tile.show_image(frame.image, frame.seq)
    if cam.error:
        tile.set_caption(cam.error, warn=True)
    elif frame is None:
        tile.set_caption("waiting for frames…")
    else:
        age = now - frame.t_host
        fps = cam.rate.rate(now)
        stale = age > max(1.0, 3.0 / max(cam.fps, 1e-3))
        text = f"{fps:4.1f} fps · {frame.image.shape[1]}×{frame.image.shape[0]}"
        tile.set_caption(f"{text} · no frame for {age:.1f} s" if stale else text, warn=stale)
