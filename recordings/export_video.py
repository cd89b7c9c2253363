"""Encode one camera of one episode into an mp4: the unit of work of the LeRobot exporter.

:func:`encode_camera` runs either in the caller's thread (``workers=0``) or in a
worker process of :class:`VideoPool` (one job per camera, so cameras encode in
parallel: JPEG decoding, colour conversion and the Python loop around them hold
the GIL, threads would not overlap). Workers are started with ``spawn``: the
GUI that calls the exporter runs Qt and recorder threads, which ``fork`` would
copy in an undefined state.

Each stored JPEG is decoded once (FFmpeg's MJPEG decoder gives YUV 4:2:0
directly, so no RGB round trip), converted from its full range to the
limited-range ``yuv420p`` the videos declare once (a per-plane lookup table,
:func:`limited_range`), and handed to the encoder as many times as the output
grid repeats it. Only the pixels sampled for the image statistics are
converted to RGB.

Invariants: a job either writes its whole mp4 or removes it (cancel, bad frame,
any error); a job sees cancellation within one frame.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import cv2
import numpy as np

from recordings.export_common import Cancelled
from recordings.format import CAMERAS, FRAME_BYTES
from recordings.reader import Episode

GOP = 2  # LeRobot's choice: a key frame every 2 frames keeps random access cheap
PIX_FMT = "yuv420p"
CRF = {"h264": 23, "hevc": 28, "av1": 30}  # per canonical codec; the keys are the codecs we accept
PRESETS = {"libx264": "ultrafast", "libx265": "ultrafast", "libsvtav1": "10"}
"""Encoder speed presets. With a key frame every 2 frames x264's ``ultrafast``
encodes 640x480 several times faster than its default ``medium`` (~2 ms a frame
instead of ~10 on this project's 2-core machine), for larger files at the same
CRF; the stream is still H.264 yuv420p, which every decoder reads."""
READ_BLOCK = 16 << 20  # bytes of stored frames read from the episode file at once
PROGRESS_EVERY = 16  # frames between two updates of the shared progress counter

# Full-range (JPEG) to limited-range (BT.601 "MPEG") levels: luma 0-255 -> 16-235, chroma 0-255 -> 16-240 about 128
_LUMA_LUT = np.round(16 + np.arange(256) * 219 / 255).astype(np.uint8)
_CHROMA_LUT = np.round(128 + (np.arange(256) - 128) * 224 / 255).clip(16, 240).astype(np.uint8)


class BadFrame(Exception):
    """A stored frame that cannot go into the video (undecodable or of the wrong size)."""


@dataclass(frozen=True)
class VideoJob:
    """Encode ``frames`` (untrimmed frame indices of ``camera``, one per output frame) at ``fps`` into ``out``."""

    episode: Path
    camera: str
    frames: np.ndarray
    out: Path
    fps: int
    codec: str
    canonical: str
    height: int
    width: int
    threads: int = 0  # encoder threads, 0 = the encoder decides


@dataclass(frozen=True)
class VideoResult:
    hist: np.ndarray  # [3, 256] per-channel histograms of the sampled frames (strided as LeRobot does)
    samples: int  # how many frames were sampled


def encoder_options(codec: str, canonical: str) -> dict[str, str]:
    """FFmpeg options of encoder ``codec``: GOP, CRF, and its speed preset where it has one."""
    options = {"g": str(GOP), "crf": str(CRF[canonical])}
    preset = PRESETS.get(av.codec.Codec(codec, "w").name)
    if preset is not None:
        options["preset"] = preset
    return options


def sample_indices(n: int) -> np.ndarray:
    """LeRobot's heuristic: 100 samples (or all of fewer), growing as n**0.75 up to 10000."""
    count = max(min(100, n), min(int(n**0.75), 10_000))
    return np.round(np.linspace(0, n - 1, count)).astype(int)


def histograms(samples: np.ndarray) -> np.ndarray:
    """Per-channel 256-bin histograms ``[3, 256]`` of frames ``[n, h, w, 3]`` uint8."""
    return np.stack([np.bincount(samples[..., c].ravel(), minlength=256) for c in range(3)]).astype(np.int64)


def encode_camera(job: VideoJob, cancelled: Callable[[], bool], tick: Callable[[int], None]) -> VideoResult:
    """Write ``job.out``; ``tick(k)`` reports k more frames encoded. Raises :class:`BadFrame` or :class:`Cancelled`."""
    n = len(job.frames)
    picks = set(sample_indices(n).tolist())
    side = max(job.height, job.width)
    step = max(1, int(side / 150)) if side >= 300 else 1
    samples: list[np.ndarray] = []
    job.out.parent.mkdir(parents=True, exist_ok=True)
    try:
        with Episode.open(job.episode) as ep, av.open(str(job.out), "w") as out:
            decoder = av.CodecContext.create("mjpeg", "r")
            stream = out.add_stream(job.codec, rate=job.fps, options=encoder_options(job.codec, job.canonical))
            stream.width, stream.height, stream.pix_fmt = job.width, job.height, PIX_FMT
            stream.codec_context.thread_count = job.threads
            stored = encoded_frames(ep, job.camera, job.frames)
            last, decoded, frame, reported = -1, None, None, 0
            for i, index in enumerate(job.frames):
                if i % PROGRESS_EVERY == 0:
                    if cancelled():
                        raise Cancelled()
                    tick(i - reported)
                    reported = i
                if index != last:
                    last = int(index)
                    decoded = _decode(decoder, next(stored), job, last)
                    frame = limited_range(decoded)
                if i in picks:
                    samples.append(strided_rgb(decoded, step))
                frame.pts = i
                out.mux(stream.encode(frame))
            out.mux(stream.encode(None))
        tick(n - reported)
    except BaseException:
        job.out.unlink(missing_ok=True)
        raise
    return VideoResult(histograms(np.stack(samples)), len(samples))


def encoded_frames(ep: Episode, cam: str, indices: np.ndarray) -> Iterator[bytes]:
    """The stored bytes of each distinct frame in ``indices`` (non-decreasing, untrimmed), in order.

    Frames are read in blocks of consecutive bytes (one HDF5 read per ~``READ_BLOCK``
    bytes instead of one per frame); frame i's bytes are ``data[offset[i]:offset[i] + size[i]]``.
    """
    wanted = np.unique(indices)
    n = ep.frame_count(cam, trimmed=False)
    group = ep.h5[CAMERAS][cam]
    offset, size, data = group["offset"][:n], group["size"][:n], group[FRAME_BYTES]
    start = 0
    while start < len(wanted):
        lo = int(offset[wanted[start]])
        stop = start + 1
        while stop < len(wanted) and offset[wanted[stop]] + size[wanted[stop]] - lo <= READ_BLOCK:
            stop += 1
        block = wanted[start:stop]
        hi = int(max(offset[block] + size[block]))
        buf = data[lo:hi].tobytes()
        for i in block:
            yield buf[offset[i] - lo: offset[i] - lo + size[i]]
        start = stop


def limited_range(frame: av.VideoFrame) -> av.VideoFrame:
    """A decoded JPEG (full-range ``yuvj420p``) as the limited-range ``yuv420p`` frame the encoder takes.

    The planes keep their layout, only their levels change, so three table
    lookups replace FFmpeg's scaler (several times cheaper per frame). Other
    pixel formats go through FFmpeg.
    """
    if frame.format.name != "yuvj420p":
        return frame.reformat(format=PIX_FMT, src_color_range="JPEG", dst_color_range="MPEG", threads=1)
    out = av.VideoFrame(frame.width, frame.height, PIX_FMT)
    for src, dst, lut in zip(frame.planes, out.planes, (_LUMA_LUT, _CHROMA_LUT, _CHROMA_LUT)):
        target = _plane(dst)
        target[...] = cv2.LUT(_plane(src), lut)
    return out


def strided_rgb(frame: av.VideoFrame, step: int) -> np.ndarray:
    """RGB of every ``step``-th pixel of a decoded JPEG (``image[::step, ::step]``) without converting the rest.

    JPEG's YCbCr is full range BT.601 (OpenCV's ``YCrCb`` conversion); a chroma
    sample covers the pixels its plane subsamples (4:2:0, 4:2:2, 4:4:4 alike).
    Other pixel formats go through FFmpeg.
    """
    if frame.format.name not in ("yuvj420p", "yuvj422p", "yuvj444p"):
        return frame.to_ndarray(format="rgb24", threads=1)[::step, ::step]
    y, cb, cr = (_plane(p) for p in frame.planes)
    y = y[::step, ::step]
    sub_y, sub_x = frame.height // cb.shape[0], frame.width // cb.shape[1]
    if step % sub_y == 0 and step % sub_x == 0:  # the usual case: plain strides, no index arrays
        pick: tuple = (slice(None, None, step // sub_y), slice(None, None, step // sub_x))
        cb, cr = cb[pick][: y.shape[0], : y.shape[1]], cr[pick][: y.shape[0], : y.shape[1]]
    else:
        rows, cols = np.arange(0, frame.height, step), np.arange(0, frame.width, step)
        pick = np.ix_(rows * cb.shape[0] // frame.height, cols * cb.shape[1] // frame.width)
        cb, cr = cb[pick], cr[pick]
    return cv2.cvtColor(np.ascontiguousarray(np.stack([y, cr, cb], axis=-1)), cv2.COLOR_YCrCb2RGB)


def _plane(plane: av.video.plane.VideoPlane) -> np.ndarray:
    """A plane's pixels as a (height, width) view (rows padded to ``line_size`` in memory)."""
    return np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)[:, : plane.width]


def _decode(decoder: av.CodecContext, data: bytes, job: VideoJob, index: int) -> av.VideoFrame:
    try:
        frames = decoder.decode(av.Packet(data))
    except av.FFmpegError:
        frames = []
    if len(frames) != 1:
        raise BadFrame(f"camera {job.camera!r} frame {index} cannot be decoded")
    frame = frames[0]
    if (frame.height, frame.width) != (job.height, job.width):
        raise BadFrame(f"camera {job.camera!r} frame {index} is {frame.width}x{frame.height}, "
                       f"expected {job.width}x{job.height}")
    return frame


# -- worker processes -----------------------------------------------------------------------
_cancel_event = None  # set in each worker by _init_worker
_counter = None


def _init_worker(event: object, counter: object) -> None:
    """Ctrl+C in a terminal reaches the whole process group: workers leave it to the parent, which cancels.

    SIGINT was blocked from the worker's start (see :class:`VideoPool`), so one that
    came while it was importing is pending and is discarded here.
    """
    global _cancel_event, _counter
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    _cancel_event, _counter = event, counter


def _tick(k: int) -> None:
    with _counter.get_lock():
        _counter.value += k


def _run_in_worker(job: VideoJob) -> VideoResult:
    return encode_camera(job, _cancel_event.is_set, _tick)


class VideoPool:
    """``workers`` processes that run :class:`VideoJob` s; use as a context manager.

    ``run(jobs, cancelled, poll)`` runs jobs side by side and returns their
    results in order; while waiting it calls ``poll(frames_done)`` ~10 times a
    second and, once ``cancelled()`` is true, stops every job within a frame
    and raises :class:`Cancelled`.
    """

    def __init__(self, workers: int) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._event = ctx.Event()
        self._counter = ctx.Value("q", 0)
        # workers inherit the signal mask: SIGINT stays blocked in them until they ignore it
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            self._pool = ctx.Pool(workers, initializer=_init_worker, initargs=(self._event, self._counter))
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)

    def __enter__(self) -> VideoPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the workers (a running job is killed; its caller removes what it wrote)."""
        self._pool.terminate()
        self._pool.join()

    def run(self, jobs: list[VideoJob], cancelled: Callable[[], bool],
            poll: Callable[[int], None]) -> list[VideoResult]:
        with self._counter.get_lock():
            self._counter.value = 0
        pending = [self._pool.apply_async(_run_in_worker, (job,)) for job in jobs]
        for result in pending:
            while not result.ready():
                if cancelled():
                    self._event.set()
                result.wait(0.1)
                poll(self._counter.value)
        errors = [r for r in pending if not r.successful()]
        if errors:
            failures = []
            for r in errors:
                try:
                    r.get()
                except BaseException as exc:  # re-raised below: the first that is not a cancellation wins
                    failures.append(exc)
            for job in jobs:
                job.out.unlink(missing_ok=True)
            raise next((e for e in failures if not isinstance(e, Cancelled)), failures[0])
        return [r.get() for r in pending]


def default_workers(cameras: int) -> int:
    """One process per camera, at most one per CPU core (at least 1)."""
    return max(1, min(cameras, os.cpu_count() or 1))
