"""Cameras of the simulated scene, rendered in a separate process.

MuJoCo renders on the CPU here (EGL on llvmpipe): ~16-18 renders/s of the SO-101
scene on one core, bound by its ~400k triangles more than by the image size, so
two 640x480 cameras get ~8-9 fps each. Rendering in a thread of the app process
costs the 100 Hz control loop its timing (p99 12.4 ms, stalls of 16-20 ms)
because the GIL and both cores are shared. A render process pinned to the core
the loop does not use, with llvmpipe on one thread, keeps the loop at p99
~10 ms (see ``shared/reference/environment.md``). So all :class:`SimCamera`
objects of one robot share one render process:

- the robot's state listener (control-loop thread, ~100 Hz) copies ``qpos`` and
  its time into shared memory under a seqlock; nothing else;
- the render process, at each camera's own rate, reads the newest state, runs
  forward kinematics on its own copy of the model, renders straight into one of
  that camera's three shared-memory frame slots and tells the app which slot;
- a reader thread in the app copies the slot out, hands the slot back, and
  publishes the frame.

A slot is written only after the app has handed it back, so a frame can never be
overwritten while it is copied: a slow app slows the render rate down instead of
tearing images. The render process is started with :mod:`subprocess` rather than
:mod:`multiprocessing` so the environment (``MUJOCO_GL``, ``LP_NUM_THREADS``) is
set before its interpreter starts and the app's ``__main__`` (Qt, torch) is not
imported again there. The shared memory is an anonymous ``memfd`` handed over as
a file descriptor: nothing is left behind in ``/dev/shm`` whichever side dies.

Shared memory layout, one memfd per render process:
    page 0      float64 ``[seq, t, n, qpos[0..n)]`` (``seq`` odd while being written, 0 = no state yet)
    then        per camera, ``SLOTS`` frames of ``height x width x 3`` uint8, each page aligned
Pipe messages:
    render -> app   ``("ready", [fovy_deg per camera])``, ``("frame", camera, slot, t_capture)``, ``("error", text)``
    app -> render   ``("on", camera)``, ``("off", camera)``, ``("free", camera, slot)``, ``("stop",)``
"""

from __future__ import annotations

import collections
import json
import math
import mmap
import os
import signal
import subprocess
import sys
import threading
import time
import weakref
from dataclasses import dataclass
from multiprocessing.connection import Connection, Pipe
from pathlib import Path
from typing import Any

import numpy as np

from drivers.base import Camera, DeviceError
from drivers.types import Frame

SLOTS = 3
READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 0.5
_STATE_HEADER = 3  # seq, t, n
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])
_CHILD_CODE = "import sys; from drivers.sim.render import _child_main; _child_main(sys.argv[1])"


@dataclass(frozen=True)
class SimCameraConfig:
    """A camera of the sim scene.

    ``mujoco_camera`` is the camera's name in the MuJoCo model (defaults to
    ``name``). ``cpu_core`` pins the shared render process: -1 picks the last
    core when the app may use two or more, ``None`` leaves it unpinned. All sim
    cameras of a robot share the process, so they must agree on it.
    """

    name: str
    width: int = 640
    height: int = 480
    fps: float = 15.0
    mujoco_camera: str | None = None
    cpu_core: int | None = -1

    def __post_init__(self) -> None:
        if self.width < 1 or self.height < 1:
            raise ValueError(f"camera {self.name!r}: width and height must be positive, got {self.width}x{self.height}")
        if not 0 < self.fps <= 1000:
            raise ValueError(f"camera {self.name!r}: fps must be in (0, 1000], got {self.fps}")
        if self.cpu_core is not None and self.cpu_core < -1:
            raise ValueError(f"camera {self.name!r}: cpu_core must be -1 (auto), a core number or None")

    @property
    def scene_camera(self) -> str:
        return self.mujoco_camera or self.name


class SimCamera(Camera):
    """One camera of the simulated robot's scene; frames come from the robot's shared render process.

    Create every sim camera of a robot before starting any of them: the first
    :meth:`start` launches the render process for all cameras created so far.
    Frames follow the simulation: each shows a newer robot state than the last
    (``t_capture`` is that state's time), so while the physics does not advance
    (nobody calls the robot's ``send``/``read``) no new frames come.
    """

    config_class = SimCameraConfig

    def __init__(self, config: SimCameraConfig, robot: Any) -> None:
        super().__init__(config.name, config.width, config.height, config.fps)
        self.config = config
        self._lock = threading.Lock()  # orders publishing against stop()
        self._active = False
        self._seq = 0
        self._service = _service_for(robot)
        self._index = self._service.register(self)

    def start(self) -> None:
        """Start delivering frames; launches the render process if this is the robot's first started camera.

        Raises :class:`DeviceError` with the reason if the render process cannot start.
        """
        self._service.start(self)

    def stop(self) -> None:
        """Stop delivering frames; the last camera of the robot to stop ends the render process. Idempotent."""
        self._service.stop(self)

    @property
    def render_pid(self) -> int | None:
        """Process id of the render process while this camera is started and it runs."""
        return self._service.pid if self._active else None

    def _begin(self) -> None:
        with self._lock:
            self._active = True
            self._seq = 0
            self.error = None

    def _end(self, error: str | None = None) -> None:
        with self._lock:
            self._active = False
            if error is not None:
                self.error = error

    def _deliver(self, image: np.ndarray, t_capture: float, t_host: float) -> None:
        with self._lock:
            if not self._active:
                return
            frame = Frame(camera=self.name, image=image, t_capture=t_capture, t_host=t_host, seq=self._seq)
            self._seq += 1
            self._publish(frame)


# -- app side: one render service per robot ------------------------------------------------------


_services: weakref.WeakKeyDictionary[Any, _RenderService] = weakref.WeakKeyDictionary()
_services_lock = threading.Lock()


def _service_for(robot: Any) -> _RenderService:
    with _services_lock:
        service = _services.get(robot)
        if service is None:
            service = _services[robot] = _RenderService(robot)
        return service


def _auto_core() -> int | None:
    """The last core, if the machine has two or more (the control loop takes core 0).

    The last core the app's main thread may use; if the app has been confined to
    one core (say the loop's), the machine's last core.
    """
    allowed = os.sched_getaffinity(os.getpid())  # the main thread's set: the loop thread pins only itself
    if len(allowed) >= 2:
        return max(allowed)
    last = (os.cpu_count() or 1) - 1
    return last if last not in allowed else None


class _RenderService:
    """The render process shared by all sim cameras of one robot, and the robot's state listener.

    Holds no reference to the robot (it is the key of a weak dictionary) and
    none from the cameras to it, so a dropped robot is collected.
    """

    def __init__(self, robot: Any) -> None:
        self._offscreen = (int(robot.config.offscreen_width), int(robot.config.offscreen_height))
        self._cubes = int(robot.config.cubes)  # the render process builds the robot's scene
        self.cameras: list[SimCamera] = []
        self._lock = threading.Lock()
        self._run: _RenderRun | None = None
        self._state: np.ndarray | None = None
        self._state_lock = threading.Lock()
        self._state_seq = 0
        self._state_t = -math.inf
        robot.add_state_listener(self._on_state)

    @property
    def pid(self) -> int | None:
        run = self._run
        return None if run is None else run.popen.pid

    def register(self, camera: SimCamera) -> int:
        with self._lock:
            self.cameras.append(camera)
            return len(self.cameras) - 1

    def _on_state(self, t: float, qpos: np.ndarray) -> None:
        """Seqlock write of the newest state: a few numpy stores, as it runs in the control loop.

        The robot calls this on whichever thread advanced the physics (the loop's
        ``send``, any thread's ``read``), so writers take a lock and a state older
        than the one already written is dropped: rendered states never go back in time.
        """
        with self._state_lock:
            s = self._state
            if s is None or t < self._state_t:
                return
            n = len(qpos)
            seq = self._state_seq + 1
            s[0] = seq  # odd: a reader that sees this (or a change of it) retries
            s[1] = t
            s[2] = n
            s[_STATE_HEADER:_STATE_HEADER + n] = qpos
            s[0] = seq + 1
            self._state_seq = seq + 1
            self._state_t = t

    def start(self, camera: SimCamera) -> None:
        with self._lock:
            if camera._active:
                return
            run = self._run
            if run is None:
                run = _RenderRun(list(self.cameras), self._offscreen, self._cubes, *self._core())
                self._run = run
                self._state = run.state
                run.reader = threading.Thread(target=self._read_frames, args=(run,), name="sim-render-reader",
                                              daemon=True)
                run.reader.start()
            elif camera._index >= len(run.cameras):
                raise DeviceError(
                    f"sim camera {camera.name!r} was created after the render process started; "
                    "create all sim cameras of a robot before starting any"
                )
            camera._begin()
            run.send(("on", camera._index))

    def stop(self, camera: SimCamera) -> None:
        with self._lock:
            if not camera._active:
                return
            camera._end()
            run = self._run
            if run is None:
                return
            if any(c._active for c in run.cameras):
                run.send(("off", camera._index))
                return
            self._run = None
            self._state = None
            run.closing = True
        run.shutdown()

    def _core(self) -> tuple[int | None, bool]:
        """The render process's core, and whether it was chosen automatically."""
        settings = {c.name: c.config.cpu_core for c in self.cameras}
        if len(set(settings.values())) > 1:
            raise DeviceError(
                f"sim cameras share one render process but ask for different cpu_core {settings}; give them the same"
            )
        setting = next(iter(settings.values()))
        return (_auto_core(), True) if setting == -1 else (setting, False)

    def _read_frames(self, run: _RenderRun) -> None:
        """Reader thread: copy each announced slot, hand it back, publish. Ends when the render process does."""
        conn = run.conn
        if run.core is not None:
            # This thread holds the GIL while it copies; on the render core the render process could
            # preempt it mid-copy and leave the control loop waiting for the GIL. Keep it off that core.
            others = os.sched_getaffinity(0) - {run.core}
            if others:
                os.sched_setaffinity(0, others)  # pid 0 = this thread on Linux
        try:
            while True:
                msg = conn.recv()
                if msg[0] == "frame":
                    _, index, slot, t_capture = msg
                    image = run.slots[index][slot].copy()
                    t_host = time.monotonic()
                    run.send(("free", index, slot))
                    run.cameras[index]._deliver(image, t_capture, t_host)
                elif msg[0] == "error":
                    run.failure = msg[1]
        except (EOFError, OSError):
            pass
        if run.closing:
            return
        reason = run.failure or run.exit_reason()
        error = f"sim render process (pid {run.popen.pid}) {reason}; stop and start the camera to restart it"
        with self._lock:
            if self._run is run:
                self._run = None
                self._state = None
            for camera in run.cameras:
                if camera._active:
                    camera._end(error)
        run.close()


class _RenderRun:
    """One render process: its shared memory, pipe and process handle. Starting it waits until it is ready."""

    def __init__(self, cameras: list[SimCamera], offscreen: tuple[int, int], cubes: int, core: int | None,
                 core_auto: bool) -> None:
        self.cameras = cameras
        self.core = core
        self.closing = False
        self.failure: str | None = None
        self.reader: threading.Thread | None = None
        self._send_lock = threading.Lock()

        offsets, size = _layout([(c.height, c.width) for c in cameras])
        fd = os.memfd_create("teleop-sim-render", os.MFD_CLOEXEC)
        parent_conn, child_conn = Pipe()
        try:
            try:
                os.ftruncate(fd, size)
                self._mm = mmap.mmap(fd, size)
            except OSError as exc:  # out of memory, or a file-size limit (`ulimit -f`) below the frames' size
                raise DeviceError(f"the sim cameras cannot get {size / 2**20:.1f} MB of shared memory for their "
                                  f"frames ({exc.strerror}): free memory, raise `ulimit -f`, or use a rig with fewer "
                                  "or smaller cameras") from None
            spec = {
                "conn_fd": child_conn.fileno(),
                "shm_fd": fd,
                "shm_size": size,
                "core": core,
                "core_auto": core_auto,
                "offscreen": [max([offscreen[0]] + [c.width for c in cameras]),
                              max([offscreen[1]] + [c.height for c in cameras])],
                "cubes": cubes,
                "cameras": [
                    {"name": c.name, "scene_camera": c.config.scene_camera, "width": c.width,
                     "height": c.height, "fps": c.fps, "offsets": offsets[i]}
                    for i, c in enumerate(cameras)
                ],
            }
            pythonpath = os.pathsep.join(p for p in (_PACKAGE_ROOT, os.environ.get("PYTHONPATH")) if p)
            # Set before the interpreter starts, so before mujoco is imported and GL created.
            env = dict(os.environ, MUJOCO_GL="egl", LP_NUM_THREADS="1", PYTHONPATH=pythonpath)
            self.popen = subprocess.Popen(
                [sys.executable, "-c", _CHILD_CODE, json.dumps(spec)],
                pass_fds=(fd, child_conn.fileno()), env=env, stdin=subprocess.DEVNULL,
            )
        finally:
            os.close(fd)
            child_conn.close()
        self.conn: Connection = parent_conn
        self.state = np.frombuffer(self._mm, np.float64, mmap.PAGESIZE // 8, 0)
        self.slots = [
            [np.frombuffer(self._mm, np.uint8, c.height * c.width * 3, off).reshape(c.height, c.width, 3)
             for off in offsets[i]]
            for i, c in enumerate(cameras)
        ]
        fovy = self._wait_ready()
        for camera, fov in zip(cameras, fovy):
            fy = 0.5 * camera.height / math.tan(math.radians(fov) / 2)
            camera.intrinsics = {"model": "pinhole", "width": camera.width, "height": camera.height,
                                 "fx": fy, "fy": fy, "cx": camera.width / 2, "cy": camera.height / 2}

    def _wait_ready(self) -> list[float]:
        deadline = time.monotonic() + READY_TIMEOUT_S
        try:
            while time.monotonic() < deadline:
                if not self.conn.poll(0.1):
                    continue
                msg = self.conn.recv()
                if msg[0] == "ready":
                    return msg[1]
                if msg[0] == "error":
                    self.failure = msg[1]
            problem = f"did not get ready within {READY_TIMEOUT_S:.0f} s"
        except (EOFError, OSError):
            problem = self.failure or f"{self.exit_reason()} before it was ready"
        self.closing = True
        self.shutdown()
        raise DeviceError(f"sim cameras cannot start: render process {problem}")

    def send(self, msg: tuple) -> None:
        """Send to the render process; a dead one is noticed by the reader thread, so errors are ignored here."""
        with self._send_lock:
            try:
                self.conn.send(msg)
            except OSError:
                pass

    def exit_reason(self) -> str:
        try:
            code = self.popen.wait(timeout=1.0)
        except subprocess.TimeoutExpired:  # it closed the pipe but hangs: make sure it is gone
            self.popen.kill()
            code = self.popen.wait()
        if code < 0:
            return f"was killed by {signal.Signals(-code).name}"
        return f"exited with code {code}"

    def shutdown(self) -> None:
        """Ask the render process to stop, kill it if it has not within ``STOP_TIMEOUT_S``, release the pipe."""
        self.send(("stop",))
        try:
            self.popen.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()
        if self.reader is not None:  # it sees end-of-file now that the process is gone
            self.reader.join(timeout=1.0)
        self.close()

    def close(self) -> None:
        # The shared memory stays mapped until the last numpy view of it is gone (the
        # state listener may still hold one); the kernel frees it then.
        with self._send_lock:
            self.conn.close()


def _layout(sizes: list[tuple[int, int]]) -> tuple[list[list[int]], int]:
    """Byte offsets of each camera's frame slots (page aligned, after the state page) and the total size."""
    offset = mmap.PAGESIZE
    offsets = []
    for height, width in sizes:
        slot_bytes = -(-height * width * 3 // mmap.PAGESIZE) * mmap.PAGESIZE
        offsets.append([offset + k * slot_bytes for k in range(SLOTS)])
        offset += SLOTS * slot_bytes
    return offsets, offset


# -- render process ------------------------------------------------------------------------------


class _Fail(Exception):
    """A render-process failure whose message is already fit for the user."""


class _ChildCamera:
    def __init__(self, spec: dict[str, Any], cam_id: int, renderer: Any, slots: list[np.ndarray]) -> None:
        self.cam_id = cam_id
        self.renderer = renderer
        self.slots = slots
        self.period = 1.0 / spec["fps"]
        self.free = collections.deque(range(SLOTS))
        self.active = False
        self.next_due = 0.0
        self.last_state_seq = 0.0


def _child_main(spec_json: str) -> None:
    """Entry point of the render process."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the app, which stops us through the pipe
    spec = json.loads(spec_json)
    conn = Connection(spec["conn_fd"])
    try:
        _serve(conn, spec)
    except (EOFError, BrokenPipeError, ConnectionResetError):  # the app is gone
        pass
    except Exception as exc:
        text = str(exc) if isinstance(exc, _Fail) else f"failed: {type(exc).__name__}: {exc}"
        try:
            conn.send(("error", text))
        except OSError:
            pass
        sys.exit(1)


def _serve(conn: Connection, spec: dict[str, Any]) -> None:
    core = spec["core"]
    if core is not None:
        try:  # every thread (numpy may have started some): the affinity call is per thread on Linux
            for tid in os.listdir("/proc/self/task"):
                os.sched_setaffinity(int(tid), {core})
        except OSError as exc:
            if not spec["core_auto"]:  # an automatic choice the machine refuses just means unpinned
                raise _Fail(f"cannot run on cpu_core {core} ({exc.strerror}); "
                            f"usable cores: {sorted(os.sched_getaffinity(0))}") from exc
    import mujoco

    from drivers.sim.model import build_model

    model = build_model(*spec["offscreen"], cubes=spec["cubes"])
    data = mujoco.MjData(model)
    mm = mmap.mmap(spec["shm_fd"], spec["shm_size"])
    os.close(spec["shm_fd"])
    state = np.frombuffer(mm, np.float64, mmap.PAGESIZE // 8, 0)
    renderers: dict[tuple[int, int], Any] = {}
    try:
        cameras = []
        for c in spec["cameras"]:
            cam_id = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, c["scene_camera"])
            if cam_id < 0:
                names = ", ".join(model.camera(i).name for i in range(model.ncam))
                raise _Fail(f"found no camera {c['scene_camera']!r} in the sim scene (cameras: {names})")
            size = (c["height"], c["width"])
            if size not in renderers:
                renderers[size] = mujoco.Renderer(model, *size)
            slots = [np.frombuffer(mm, np.uint8, size[0] * size[1] * 3, off).reshape(*size, 3)
                     for off in c["offsets"]]
            cameras.append(_ChildCamera(c, cam_id, renderers[size], slots))
        conn.send(("ready", [float(model.cam_fovy[c.cam_id]) for c in cameras]))
        _render_loop(conn, model, data, state, cameras)
    finally:
        for renderer in renderers.values():
            renderer.close()


def _read_state(state: np.ndarray, qpos_out: np.ndarray) -> tuple[float, float] | None:
    """``(seq, t)`` of the newest state with its qpos copied into ``qpos_out``; None if none is readable yet.

    A read that overlaps a write (odd or changed ``seq``) is retried; the writer is a
    Python thread that can be preempted mid-write, hence the short sleeps.
    """
    nq = len(qpos_out)
    for _ in range(50):
        seq = state[0]
        if seq == 0:
            return None
        if seq % 2 == 0:
            t = float(state[1])
            n = int(state[2])
            qpos_out[:] = state[_STATE_HEADER:_STATE_HEADER + nq]
            if state[0] == seq:
                if n != nq:
                    raise _Fail(f"robot state has {n} positions but the render model has nq={nq}")
                return float(seq), t
        time.sleep(0.0002)
    return None


def _render_loop(conn: Connection, model: Any, data: Any, state: np.ndarray, cameras: list[_ChildCamera]) -> None:
    import mujoco

    qpos = np.empty(model.nq)
    forwarded_seq = 0.0
    while True:
        now = time.monotonic()
        wait = 0.1  # nothing to do: sleep until a message (a slot back, on/off, stop) or this long
        for index, cam in sorted(enumerate(cameras), key=lambda ic: ic[1].next_due):
            if not cam.active or not cam.free:
                continue
            if cam.next_due > now:
                wait = min(wait, cam.next_due - now)
                continue
            got = _read_state(state, qpos)
            if got is None or got[0] == cam.last_state_seq:  # no new state: the sim is not advancing
                wait = min(wait, 0.002)
                continue
            seq, t_capture = got
            if seq != forwarded_seq:
                data.qpos[:] = qpos
                mujoco.mj_forward(model, data)
                forwarded_seq = seq
            slot = cam.free.popleft()
            cam.renderer.update_scene(data, camera=cam.cam_id)
            cam.renderer.render(out=cam.slots[slot])
            conn.send(("frame", index, slot, t_capture))
            cam.last_state_seq = seq
            # Keep the camera's own rate; when rendering cannot keep up, render as often as it can, no bursts.
            cam.next_due = max(cam.next_due + cam.period, time.monotonic())
            wait = 0.0
        if not conn.poll(wait):
            continue
        while conn.poll(0):
            msg = conn.recv()
            kind = msg[0]
            if kind == "free":
                cameras[msg[1]].free.append(msg[2])
            elif kind == "on":
                cam = cameras[msg[1]]
                cam.active = True
                cam.next_due = time.monotonic()
            elif kind == "off":
                cameras[msg[1]].active = False
            elif kind == "stop":
                return
