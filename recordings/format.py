"""Names and codes of the episode file format (``docs/episode-format.md`` is the normative spec).

One HDF5 file per episode. Every time in the file is host monotonic seconds
(``time.monotonic()``); readers show times relative to the root attribute
``t0`` (the first tick). Editable metadata (task, success, notes, kept range)
are root attributes, so edits never rewrite data.
"""

from __future__ import annotations

from drivers.types import SOURCES

FORMAT_NAME = "teleop-episode"
FORMAT_VERSION = 2
"""1: the first layout. 2: ``/ticks/driver`` (which input or policy drove each tick) and the ``scripted``
source. Readers open both; a version-1 file reads with an empty driver on every tick."""
DRIVER_BYTES = 32  # a driver name is stored as UTF-8 cut to this many bytes
SUFFIX = ".h5"
TRASH_DIR = ".trash"

# Root attributes, all always present.
ROOT_ATTRS = (
    "format",  # FORMAT_NAME
    "format_version",  # int
    "status",  # "recording" while being written, "complete" once finalized
    "created",  # ISO 8601 UTC of the first tick
    "t0",  # float64: monotonic time of the first tick; times shown relative to it
    "app_version",
    "rig",  # rig name
    "robot_type",  # registry type of the robot, e.g. "sim_so101"
    "joint_names",  # JSON list, gripper last
    "joint_units",  # JSON list, e.g. ["rad", ..., "rad"]
    "control_rate_hz",  # float
    "cameras",  # JSON list of camera stream names
    "task",  # the task sentence
    "operator",
    "success",  # SUCCESS_VALUES
    "notes",  # free text: what ended the episode, takeovers, repairs (written when the episode is finalized)
    "kept_start",  # float seconds relative to t0, NaN = from the start (non-destructive trim)
    "kept_end",  # float seconds relative to t0, NaN = to the end
    "dropped",  # JSON {stream: count} of samples the recorder could not keep (written at finalize)
)
SUCCESS_VALUES = ("unknown", "true", "false")
# Root attributes added to version 2 without a bump (an older reader ignores them); a file without one
# reads as this default.
OPTIONAL_ROOT_ATTRS = {
    "wrong_object": "false",  # "true": the robot reported an object the task did not name picked (notes say which)
}
WRONG_OBJECT_VALUES = ("false", "true")

# /ticks: one row per control tick, all datasets the same length.
TICKS = "ticks"
TICK_DATASETS = {
    # name: (dtype, per-row shape; "J" = number of joints, "R" = max(7, J))
    "tick": ("int64", ()),
    "t": ("float64", ()),  # tick start
    "t_sent": ("float64", ()),  # command handed to the robot
    "t_state": ("float64", ()),  # measured state read on the host
    "state": ("float32", ("J",)),  # measured joint positions
    "velocity": ("float32", ("J",)),  # measured joint velocities
    "gripper": ("float32", ()),  # measured opening 0..1
    "ee_pos": ("float32", (3,)),  # end-effector point, base frame (m)
    "action": ("float32", ("J",)),  # joint targets sent to the robot (after safety)
    "raw_input": ("float32", ("R",)),  # operator input: EE delta [7] or joint targets [J], NaN-padded to R
    "input_kind": ("uint8", ()),  # INPUT_KINDS index
    "source": ("uint8", ()),  # SOURCES index
    "safety": ("uint8", ()),  # drivers.types.SafetyFlag bits
    "driver": (f"S{DRIVER_BYTES}", ()),  # the input device or policy that drove the tick (b"" while idle)
}
ADDED_IN = {"driver": 2}  # tick datasets that a file of an older version lacks


def tick_datasets(version: int) -> dict[str, tuple[str, tuple]]:
    """The ``/ticks`` datasets a file of format ``version`` holds."""
    return {name: spec for name, spec in TICK_DATASETS.items() if ADDED_IN.get(name, 1) <= version}


def encode_driver(name: str) -> bytes:
    """A driver name as stored: UTF-8, cut to :data:`DRIVER_BYTES` bytes without splitting a character."""
    return name.encode("utf-8")[:DRIVER_BYTES].decode("utf-8", "ignore").encode("utf-8")
RAW_INPUT_MIN = 7  # R = max(RAW_INPUT_MIN, J): an EE delta always fits, and so do a leader arm's joint targets
# SOURCES (who drove a tick: idle, human, policy, intervention, replay, scripted) comes from drivers.types.
INPUT_KINDS = ("none", "ee_delta", "joint")

# /cameras/<name>: one row per frame, at the camera's own rate, with its own timestamps.
# The encoded images are concatenated in the flat uint8 dataset "data"; frame i is
# data[offset[i] : offset[i] + size[i]] (JPEG for color, 16-bit PNG for depth).
CAMERAS = "cameras"
FRAME_DATASETS = {
    "seq": ("int64", ()),
    "t_capture": ("float64", ()),
    "t_host": ("float64", ()),
    "offset": ("int64", ()),
    "size": ("int32", ()),
}
FRAME_BYTES = "data"
CAMERA_ATTRS = ("width", "height", "fps", "kind", "encoding", "intrinsics")  # kind: color|depth; intrinsics JSON or "null"
ENCODINGS = ("jpeg", "png16")


# Every dataset is created with the fill value of its dtype, so rows whose bytes
# never reached the disk (a crash between a resize and the data) are recognisable.
FILL_VALUES = {"float32": float("nan"), "float64": float("nan"), "int64": -1, "int32": -1, "uint8": 255,
               f"S{DRIVER_BYTES}": b""}
