"""OpenCV camera driver on video files generated here (frame i shows its index), through the real
``cv2.VideoCapture``; a file-backed capture that behaves like a USB camera covers stalls and unplugging."""

import sys
import threading
import time

import cv2
import numpy as np
import pytest

from drivers import registry
from drivers.base import DeviceError
from drivers.opencv_camera import OpenCVCamera, OpenCVCameraConfig
from waiting import wait_for

W, H, FILE_FPS, N = 64, 48, 20.0, 30


def index_of(image: np.ndarray) -> int:
    return round((float(image.mean()) - 10) / 7)


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    """An MJPG file of N frames at 20 fps; frame i is uniformly gray 10 + 7 i."""
    path = tmp_path_factory.mktemp("video") / "counting.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), FILE_FPS, (W, H))
    assert writer.isOpened()
    for i in range(N):
        writer.write(np.full((H, W, 3), 10 + 7 * i, np.uint8))
    writer.release()
    return path


@pytest.fixture
def cameras():
    made = []

    def make(open_capture=None, **options) -> OpenCVCamera:
        cam = OpenCVCamera(OpenCVCameraConfig(name="cam", **options), open_capture=open_capture)
        made.append(cam)
        return cam

    yield make
    for cam in made:
        cam.stop()


def test_a_video_file_plays_in_order_at_its_rate_then_ends(cameras, video):
    cam = cameras(path=str(video))
    sub = cam.subscribe("test")
    cam.start()
    assert (cam.width, cam.height, cam.fps) == (W, H, FILE_FPS)
    assert wait_for(lambda: cam.state == "ended", timeout=10.0)
    frames = sub.drain()
    assert [index_of(f.image) for f in frames] == list(range(N))
    assert [f.seq for f in frames] == list(range(N))
    assert all(f.image.shape == (H, W, 3) and f.image.dtype == np.uint8 for f in frames)
    assert [f.t_device for f in frames] == pytest.approx([i / FILE_FPS for i in range(N)])
    assert all(f.clock == "media" and f.t_capture <= f.t_host for f in frames)
    spacing = np.diff([f.t_capture for f in frames])
    assert spacing == pytest.approx(np.full(N - 1, 1 / FILE_FPS))  # the rate the frames carry
    assert "end of file" in cam.error and f"after {N} frames" in cam.error
    assert index_of(cam.latest().image) == N - 1  # the last image stays on screen


def test_fps_sets_the_playback_rate_and_loop_restarts_the_file(cameras, video):
    cam = cameras(path=str(video), fps=200.0, at_end="loop")
    sub = cam.subscribe("test")
    cam.start()
    assert cam.fps == 200.0
    assert wait_for(lambda: len(sub) >= 2 * N + 5, timeout=10.0)
    frames = sub.drain()[: 2 * N + 5]
    assert [index_of(f.image) for f in frames] == list(range(N)) * 2 + list(range(5))
    t = np.array([f.t_capture for f in frames])
    assert np.diff(t) == pytest.approx(np.full(len(t) - 1, 1 / 200.0))  # no jump at the seam
    assert cam.state == "running" and cam.error is None


class UsbLikeCapture:
    """A capture that acts like a USB camera: ``read`` waits for the next frame period, the buffer
    time stamp is host monotonic time (as V4L2 gives it), the picture comes from a video file (looped).
    ``stalled`` makes ``read`` block; ``unplugged`` makes it fail and the device unopenable."""

    def __init__(self, path, plugged: threading.Event, flowing: threading.Event) -> None:
        self.cap = cv2.VideoCapture(str(path))
        self.plugged, self.flowing = plugged, flowing
        self.next = time.monotonic()
        self.stamp_ms = 0.0
        self.settings = {}

    def isOpened(self) -> bool:
        return self.cap.isOpened() and self.plugged.is_set()

    def read(self):
        self.flowing.wait()
        if not self.plugged.is_set():
            return False, None
        self.next += 1 / FILE_FPS
        time.sleep(max(0.0, self.next - time.monotonic()))
        ok, image = self.cap.read()
        if not ok:
            self.cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, image = self.cap.read()
        self.stamp_ms = time.monotonic() * 1000.0
        return ok, image

    def get(self, prop):
        return self.stamp_ms if prop == cv2.CAP_PROP_POS_MSEC else self.cap.get(prop)

    def set(self, prop, value) -> bool:
        self.settings[prop] = value
        return True

    def release(self) -> None:
        self.cap.release()


@pytest.fixture
def usb(video):
    plugged, flowing = threading.Event(), threading.Event()
    plugged.set()
    flowing.set()
    opened = []

    def open_capture(source):
        assert source == 3
        opened.append(UsbLikeCapture(video, plugged, flowing))
        return opened[-1]

    yield open_capture, plugged, flowing, opened
    flowing.set()  # let a blocked read return so the reader thread can end


def test_a_camera_requests_its_settings_and_stamps_frames_on_the_monotonic_clock(cameras, usb):
    open_capture, _, _, opened = usb
    cam = cameras(open_capture, index=3, fourcc="MJPG", width=W, height=H, fps=20.0)
    sub = cam.subscribe("test")
    cam.start()
    assert wait_for(lambda: len(sub) >= 5)
    frames = sub.drain()
    assert opened[0].settings == {cv2.CAP_PROP_FOURCC: cv2.VideoWriter_fourcc(*"MJPG"), cv2.CAP_PROP_FRAME_WIDTH: W,
                                  cv2.CAP_PROP_FRAME_HEIGHT: H, cv2.CAP_PROP_FPS: 20.0}
    assert all(f.clock == "v4l2_monotonic" and f.t_capture == f.t_device <= f.t_host for f in frames)
    indices = [index_of(f.image) for f in frames]
    assert indices == list(range(indices[0], indices[0] + len(indices)))


def test_a_stalled_camera_turns_stale_and_recovers(cameras, usb):
    open_capture, _, flowing, _ = usb
    cam = cameras(open_capture, index=3, stale_after_s=0.3)
    cam.start()
    assert wait_for(lambda: cam.latest().seq >= 3)
    flowing.clear()  # the next read blocks inside the capture, as a wedged USB camera does
    assert wait_for(lambda: cam.state == "stale", timeout=3.0)
    assert "no frame for" in cam.error and "\n" not in cam.error
    seq = cam.latest().seq
    flowing.set()
    assert wait_for(lambda: cam.latest().seq > seq and cam.state == "running")
    assert cam.error is None


def test_unplug_mid_run_reports_it_and_reopens(cameras, usb):
    open_capture, plugged, _, opened = usb
    cam = cameras(open_capture, index=3, reconnect_interval_s=0.05)
    cam.start()
    assert wait_for(lambda: cam.latest().seq >= 3)
    plugged.clear()
    assert wait_for(lambda: cam.state == "lost")
    assert "stopped delivering frames" in cam.error
    assert wait_for(lambda: "cannot be opened" in (cam.error or ""))  # it keeps trying
    seq = cam.latest().seq
    plugged.set()
    assert wait_for(lambda: cam.state == "running" and cam.latest().seq > seq)
    assert cam.error is None and len(opened) >= 2


def one_line(exc: pytest.ExceptionInfo) -> str:
    assert "\n" not in str(exc.value)
    return str(exc.value)


def test_what_cannot_be_opened_is_one_line(cameras, tmp_path):
    with pytest.raises(DeviceError) as exc:
        cameras(index=99).start()  # the real cv2.VideoCapture, no such camera
    assert "cannot be opened" in one_line(exc) and "video group" in str(exc.value)
    with pytest.raises(DeviceError) as exc:
        cameras(path=str(tmp_path / "missing.mp4")).start()
    assert "no such file" in one_line(exc)
    not_video = tmp_path / "notes.avi"
    not_video.write_text("not a video")
    with pytest.raises(DeviceError) as exc:
        cameras(path=str(not_video)).start()
    assert "cannot decode" in one_line(exc)


def test_missing_opencv_is_one_line(monkeypatch, video):
    monkeypatch.setitem(sys.modules, "cv2", None)
    cam = registry.create("camera", "opencv", {"name": "file", "path": str(video)})
    with pytest.raises(DeviceError) as exc:
        cam.start()
    assert "pip install opencv-python" in one_line(exc)


def test_config_is_checked():
    assert OpenCVCameraConfig(name="c").index == 0
    with pytest.raises(ValueError, match="not both"):
        OpenCVCameraConfig(name="c", index=0, path="/dev/video0")
    with pytest.raises(ValueError, match="at_end"):
        OpenCVCameraConfig(name="c", path="x.mp4", at_end="rewind")
    assert not OpenCVCameraConfig(name="c", path="/dev/video0").is_file
