"""RealSense driver on ``pyrealsense2.software_device``: the driver's own pipeline, alignment, clock
mapping, fan-out and stall handling run on frames injected with known content and time stamps."""

import sys
import threading
import time
import uuid

import numpy as np
import pyrealsense2 as rs
import pytest

from drivers import registry
from drivers.base import DeviceError
from drivers.realsense import DeviceClock, RealSenseCamera, RealSenseConfig
from drivers.registry import ConfigError
from recordings.writer import encode_image
from waiting import wait_for

W, H, FPS = 64, 48, 30
FX, FY, PPX, PPY, COEFFS = 50.5, 51.0, 31.5, 23.5, [0.1, -0.05, 0.0, 0.0, 0.01]


class SoftwareRealSense:
    """A virtual D4xx: a depth sensor (z16, 1 mm units) and a color sensor (rgb8) sharing intrinsics.

    Frame n shows color value ``base + n`` (mod 256) and depth ``1000 + n`` mm, stamped
    ``t0_ms + n * period`` in ``domain``; a thread can send them at ``FPS``.
    """

    def __init__(self, base: int = 0, domain=rs.timestamp_domain.hardware_clock, t0_ms: float = 5_000.0) -> None:
        self.serial = uuid.uuid4().hex[:12]
        self.base, self.domain, self.t0_ms = base, domain, t0_ms
        self.device = rs.software_device()
        self.device.register_info(rs.camera_info.serial_number, self.serial)
        self.device.register_info(rs.camera_info.name, "Software RealSense")
        self.depth_sensor = self.device.add_sensor("Stereo Module")
        self.color_sensor = self.device.add_sensor("RGB Camera")
        self.depth_profile = self._stream(self.depth_sensor, rs.stream.depth, rs.format.z16, 2, uid=0)
        self.color_profile = self._stream(self.color_sensor, rs.stream.color, rs.format.rgb8, 3, uid=1)
        self.depth_sensor.add_read_only_option(rs.option.depth_units, 0.001)
        same_place = rs.extrinsics()
        same_place.rotation, same_place.translation = [1, 0, 0, 0, 1, 0, 0, 0, 1], [0, 0, 0]
        self.depth_profile.register_extrinsics_to(self.color_profile, same_place)
        self.device.create_matcher(rs.matchers.dlr_c)
        self.sent = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @staticmethod
    def _stream(sensor, kind, fmt, bpp, uid):
        intr = rs.intrinsics()
        intr.width, intr.height, intr.fx, intr.fy, intr.ppx, intr.ppy = W, H, FX, FY, PPX, PPY
        intr.model, intr.coeffs = rs.distortion.brown_conrady, COEFFS
        vs = rs.video_stream()
        vs.type, vs.index, vs.uid, vs.width, vs.height, vs.fps, vs.bpp, vs.fmt = kind, 0, uid, W, H, FPS, bpp, fmt
        vs.intrinsics = intr
        return sensor.add_video_stream(vs, True).as_video_stream_profile()

    def stamp_ms(self, n: int) -> float:
        return self.t0_ms + n * 1000.0 / FPS

    def send(self, n: int) -> None:
        images = ((self.depth_sensor, self.depth_profile, 2, np.full((H, W), 1000 + n, np.uint16)),
                  (self.color_sensor, self.color_profile, 3, np.full((H, W, 3), (self.base + n) % 256, np.uint8)))
        for sensor, profile, bpp, image in images:
            f = rs.software_video_frame()
            f.pixels, f.bpp, f.stride = image, bpp, W * bpp
            f.timestamp, f.domain, f.frame_number, f.profile = self.stamp_ms(n), self.domain, n, profile
            sensor.on_video_frame(f)
        self.sent = n + 1

    def play(self, skip: frozenset = frozenset()) -> None:
        """Send frames ``sent, sent+1, ...`` at FPS (numbers in ``skip`` are dropped) until :meth:`pause`."""
        self._stop.clear()

        def run():
            n = self.sent
            while not self._stop.wait(1.0 / FPS):
                if n not in skip:
                    self.send(n)
                n += 1
                self.sent = n

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()

    def pause(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


@pytest.fixture
def camera_pair():
    """A software RealSense with a color and a depth camera on it; stopped afterwards."""
    made = []

    def make(base: int = 0, **options):
        sw = SoftwareRealSense(base, **{k: options.pop(k) for k in ("domain", "t0_ms") if k in options})
        cams = [RealSenseCamera(RealSenseConfig(name=f"{stream}-{sw.serial}", serial=sw.serial, stream=stream,
                                                width=W, height=H, fps=FPS, **options), device=sw.device)
                for stream in ("color", "depth")]
        made.append((sw, cams))
        return sw, cams

    yield make
    for sw, cams in made:
        sw.pause()
        for cam in cams:
            cam.stop()


def collect(cams, sw, count: int, **play):
    subs = [cam.subscribe("test") for cam in cams]
    sw.play(**play)
    assert wait_for(lambda: all(len(s) >= count for s in subs))
    sw.pause()
    return [s.drain() for s in subs]


def test_color_and_depth_frames_arrive_in_order_with_content_and_stamps(camera_pair):
    sw, (color, depth) = camera_pair()
    for cam in (color, depth):
        cam.start()
    colors, depths = collect((color, depth), sw, 20)
    first = int(colors[0].image[0, 0, 0])
    for i, (c, d) in enumerate(zip(colors, depths)):
        n = first + i
        assert c.seq == d.seq == i
        assert c.image.shape == (H, W, 3) and c.image.dtype == np.uint8 and np.all(c.image == n)
        assert d.image.shape == (H, W) and d.image.dtype == np.uint16 and d.image[H // 2, W // 2] == 1000 + n
        assert c.t_device == pytest.approx(sw.stamp_ms(n) / 1000.0) and c.clock == "hardware_clock"
        assert d.t_device == pytest.approx(sw.stamp_ms(n) / 1000.0) and d.clock == "hardware_clock"
        assert c.t_capture <= c.t_host and d.t_capture <= d.t_host
        assert encode_image(c.image, color.kind, color.width, color.height) is not None  # the recorder takes it
        assert encode_image(d.image, depth.kind, depth.width, depth.height) is not None
    t = [c.t_capture for c in colors]
    assert all(b >= a for a, b in zip(t, t[1:]))
    assert color.error is None and depth.error is None and color.missed == 0
    assert (color.kind, depth.kind) == ("color", "depth") and color.serial == sw.serial


def test_intrinsics_and_depth_scale_for_the_episode(camera_pair):
    sw, (color, depth) = camera_pair()
    color.start()
    depth.start()
    expected = {"model": "brown_conrady", "width": W, "height": H, "fx": FX, "fy": FY, "cx": PPX, "cy": PPY}
    for cam in (color, depth):
        assert {k: cam.intrinsics[k] for k in expected} == pytest.approx(expected)
        assert cam.intrinsics["coeffs"] == pytest.approx(COEFFS)
    assert depth.intrinsics["depth_scale"] == pytest.approx(0.001)
    assert "depth_scale" not in color.intrinsics


def test_unaligned_depth_and_a_depth_only_camera(camera_pair):
    sw, (color, depth) = camera_pair(align_depth=False)
    depth.start()  # color is not started: the pipeline still delivers both, only depth is published
    (depths,) = collect((depth,), sw, 5)
    assert depths[0].image.dtype == np.uint16 and color.latest() is None


def test_global_time_stamps_map_through_the_wall_clock(camera_pair):
    sw, (color, depth) = camera_pair(domain=rs.timestamp_domain.global_time, t0_ms=time.time() * 1000.0 - 60_000)
    color.start()
    depth.start()
    colors, _ = collect((color, depth), sw, 3)
    assert colors[0].clock == "global_time"
    offset = time.time() - time.monotonic()
    for c in colors:  # stamped a minute ago on the wall clock: clamped to never after the host time
        assert c.t_device - offset < c.t_host and c.t_capture <= c.t_host


def test_device_frame_drops_are_counted(camera_pair):
    sw, (color, depth) = camera_pair()
    color.start()
    depth.start()
    sw.send(0)
    assert wait_for(lambda: color.latest() is not None)
    start = sw.sent
    collect((color,), sw, 6, skip=frozenset({start + 2, start + 3}))
    assert color.missed == 2


def test_two_cameras_by_serial(camera_pair):
    sw_a, (color_a, depth_a) = camera_pair(base=0)
    sw_b, (color_b, depth_b) = camera_pair(base=100)
    for cam in (color_a, depth_a, color_b, depth_b):
        cam.start()
    sub_a, sub_b = color_a.subscribe("a"), color_b.subscribe("b")
    sw_a.play()
    sw_b.play()
    assert wait_for(lambda: len(sub_a) >= 5 and len(sub_b) >= 5)
    sw_a.pause()
    sw_b.pause()
    a = [int(f.image[0, 0, 0]) for f in sub_a.drain()]
    b = [int(f.image[0, 0, 0]) for f in sub_b.drain()]
    assert max(a) < 100 <= min(b)  # each camera's frames come from its own device


def test_unplug_mid_run_sets_an_error_stops_frames_and_recovers(camera_pair):
    sw, (color, depth) = camera_pair(stale_after_s=0.3, reconnect_interval_s=0.1)
    color.start()
    depth.start()
    collect((color, depth), sw, 3)  # streaming, then the device goes silent
    assert wait_for(lambda: color.error is not None and depth.error is not None)
    assert "no frame for 0.3 s" in color.error and "\n" not in color.error
    last = color.latest().seq
    assert not wait_for(lambda: color.latest().seq != last, timeout=0.5)  # frames stopped, no crash
    sub = color.subscribe("after")
    sw.play()  # plugged back: the unit restarts its pipeline and frames resume
    assert wait_for(lambda: len(sub) >= 3, timeout=10.0)
    sw.pause()
    assert wait_for(lambda: color.error is None)


def test_cameras_of_one_serial_must_agree():
    sw = SoftwareRealSense()
    cams = [RealSenseCamera(RealSenseConfig(name="c", serial=sw.serial, width=W, height=H), device=sw.device),
            RealSenseCamera(RealSenseConfig(name="d", serial=sw.serial, stream="depth", width=32, height=24),
                            device=sw.device)]
    with pytest.raises(ConfigError, match="same width and height"):
        cams[0].start()
    with pytest.raises(ConfigError, match="already has a color camera"):
        RealSenseCamera(RealSenseConfig(name="c2", serial=sw.serial, width=W, height=H), device=sw.device)


def test_a_stream_created_after_start_is_refused(camera_pair):
    sw, (color, depth) = camera_pair()
    color.start()
    with pytest.raises(DeviceError, match="create all its streams"):
        RealSenseCamera(RealSenseConfig(name="late", serial=sw.serial, stream="depth", width=W, height=H),
                        device=sw.device)


def test_missing_library_and_missing_camera_are_one_line(monkeypatch):
    cam = registry.create("camera", "realsense", {"name": "rs", "serial": "000000000000"})
    with pytest.raises(DeviceError) as exc:
        cam.start()  # no camera with this serial here
    assert "000000000000" in str(exc.value) and "\n" not in str(exc.value)
    monkeypatch.setitem(sys.modules, "pyrealsense2", None)
    with pytest.raises(DeviceError) as exc:
        cam.start()
    assert "pip install pyrealsense2" in str(exc.value) and "\n" not in str(exc.value)
    assert cam.error is None and cam.latest() is None


def test_config_is_checked():
    with pytest.raises(ValueError, match="stream"):
        RealSenseConfig(name="x", stream="infrared")
    assert RealSenseConfig(name="x", serial=123456).serial == "123456"  # TOML may give a number


# -- the clock mapping ---------------------------------------------------------------------------


def test_hardware_clock_takes_the_least_delayed_frame_and_never_runs_ahead():
    clock = DeviceClock()
    delays = [0.012, 0.008, 0.015, 0.005, 0.009, 0.030, 0.006]  # transfer delays of successive frames
    out = []
    for n, delay in enumerate(delays):
        t_device = 100.0 + n / 30  # the device's own clock: offset unknown to the host
        t_host = 5000.0 + n / 30 + delay
        out.append(clock.map(t_device, "hardware_clock", t_host))
        assert out[-1] <= t_host
    assert all(b >= a for a, b in zip(out, out[1:]))
    assert out[-1] == pytest.approx(5000.0 + 6 / 30 + 0.005)  # the 5 ms frame set the offset


def test_hardware_clock_follows_a_slow_device_clock_and_a_reset():
    clock = DeviceClock(drift=1e-4)
    for n in range(3000):  # 100 s at 30 fps, the device clock 50 ppm slow, 4 ms transfer
        t = n / 30
        mapped = clock.map(t * (1 - 50e-6), "hardware_clock", 1000.0 + t + 0.004)
    assert mapped == pytest.approx(1000.0 + 100 - 1 / 30 + 0.004, abs=1e-3)
    after_reset = clock.map(0.5, "hardware_clock", 1200.0)
    assert after_reset == pytest.approx(1200.0)


def test_host_clock_domains_use_the_wall_clock_offset():
    clock = DeviceClock(wall_minus_monotonic=lambda: 1.7e9)
    assert clock.map(1.7e9 + 42.0, "global_time", t_host=42.01) == pytest.approx(42.0)
    assert clock.map(1.7e9 + 42.5, "system_time", t_host=42.02) == pytest.approx(42.02)  # clamped to t_host
