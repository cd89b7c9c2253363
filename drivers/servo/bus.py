"""A half-duplex servo bus on a serial port (USB-TTL adapter), for either wire protocol.

Every exchange is one request and zero or more status packets, under a lock so
a reader thread, the control loop and the watchdog may share one bus. A reply
that does not arrive within ``timeout`` or fails its checksum/CRC makes the
whole exchange start again (``retries`` times) after the input is flushed;
bytes that are not a packet are skipped. Failures end as one-line
:class:`~drivers.base.DeviceError` messages naming the servo, the port and the fix.

``pyserial`` is imported when a bus opens, so a missing library is a clear error
too. Reads wait with ``select`` on the port, so this module is POSIX only.
"""

from __future__ import annotations

import errno
import select
import termios
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from drivers.base import DeviceError
from drivers.servo.dynamixel import DYNAMIXEL
from drivers.servo.feetech import FEETECH
from drivers.servo.protocol import (
    BROADCAST_ID, PING, READ, SYNC_READ, SYNC_WRITE, WRITE, BadPacket, Decoder, Packet, WireProtocol,
)

PROTOCOLS: dict[str, WireProtocol] = {"feetech": FEETECH, "dynamixel": DYNAMIXEL}
UDEV_HINT = "docs/hardware.md (serial servo buses)"
_IO_ERRORS = (OSError, termios.error)  # pyserial's SerialException is an OSError


def get_protocol(name: str) -> WireProtocol:
    try:
        return PROTOCOLS[name]
    except KeyError:
        raise ValueError(f"unknown servo protocol {name!r} (known: {', '.join(PROTOCOLS)})") from None


class _NoReply(Exception):
    def __init__(self, missing: Sequence[int]) -> None:
        super().__init__(missing)
        self.missing = list(missing)


class ServoBus:
    """The servos on one serial port. Thread safe; open with :meth:`open` (or ``with``)."""

    def __init__(self, port: str, protocol: str | WireProtocol, baud: int | None = None, *,
                 timeout: float = 0.02, retries: int = 2) -> None:
        self.port = port
        self.protocol = get_protocol(protocol) if isinstance(protocol, str) else protocol
        self.baud = baud or self.protocol.default_baud
        self.timeout = timeout
        self.retries = retries
        self.alerts: dict[int, str] = {}  # servo id -> hardware alarm text of its latest reply
        self._lock = threading.RLock()
        self._serial: Any = None
        self._decoder = Decoder(self.protocol)
        self._closed_reason: str | None = None
        self._retried = 0
        self._timeouts = 0

    # -- lifecycle ---------------------------------------------------------------------------
    def open(self) -> None:
        """Open the port. Raises DeviceError naming the fix (missing port, permissions, in use, no pyserial)."""
        try:
            import serial
        except ImportError:
            raise DeviceError("servo buses need pyserial: pip install pyserial") from None
        with self._lock:
            if self._serial is not None:
                return
            try:
                self._serial = serial.Serial(self.port, self.baud, timeout=0, write_timeout=1.0, exclusive=True)
            except serial.SerialException as exc:
                raise DeviceError(self._open_error(exc)) from None
            except (ValueError, OSError) as exc:
                raise DeviceError(f"cannot open serial port {self.port} at {self.baud} baud: {exc}") from None
            self._closed_reason = None
            self._decoder.clear()

    def close(self) -> None:
        with self._lock:
            ser, self._serial = self._serial, None
            if ser is not None:
                try:
                    ser.close()
                except _IO_ERRORS:
                    pass  # an unplugged adapter cannot be closed cleanly; the descriptor is gone either way

    @property
    def is_open(self) -> bool:
        return self._serial is not None

    def __enter__(self) -> ServoBus:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def stats(self) -> dict[str, int]:
        """Counters since construction: retried exchanges, timeouts, corrupt replies, garbage bytes skipped."""
        return {"retries": self._retried, "timeouts": self._timeouts,
                "corrupt": self._decoder.corrupt, "garbage_bytes": self._decoder.garbage}

    # -- register access ---------------------------------------------------------------------
    def ping(self, servo_id: int) -> None:
        """Raise DeviceError unless servo ``servo_id`` answers."""
        self._exchange(self.protocol.encode(servo_id, PING), [servo_id], None, "a ping")

    def read(self, servo_id: int, addr: int, size: int) -> int:
        """Unsigned little-endian value of ``size`` bytes at ``addr``."""
        packet = self.protocol.encode(servo_id, READ, self.protocol.read_params(addr, size))
        data = self._exchange(packet, [servo_id], size, f"a read of register {addr}")[servo_id]
        return int.from_bytes(data, "little")

    def write(self, servo_id: int, addr: int, size: int, value: int) -> None:
        """Write an unsigned value and wait for the servo's acknowledgement."""
        params = self.protocol.write_params(addr, value.to_bytes(size, "little"))
        self._exchange(self.protocol.encode(servo_id, WRITE, params), [servo_id], 0, f"a write to register {addr}")

    def sync_read(self, ids: Sequence[int], addr: int, size: int) -> dict[int, int]:
        """One SYNC_READ: the unsigned value at ``addr`` of every servo in ``ids``."""
        params = self.protocol.sync_read_params(addr, size, ids)
        data = self._exchange(self.protocol.encode(BROADCAST_ID, SYNC_READ, params), ids, size,
                              f"a sync read of register {addr}")
        return {i: int.from_bytes(data[i], "little") for i in ids}

    def sync_write(self, addr: int, size: int, values: Mapping[int, int]) -> None:
        """One SYNC_WRITE (servos do not answer it)."""
        params = self.protocol.sync_write_params(addr, size, {i: v.to_bytes(size, "little") for i, v in values.items()})
        with self._lock:
            self._send(self._require(), self.protocol.encode(BROADCAST_ID, SYNC_WRITE, params))

    # -- positions and torque ----------------------------------------------------------------
    def read_positions(self, ids: Sequence[int]) -> dict[int, int]:
        """Present positions (signed ticks) of ``ids`` in one sync read."""
        p = self.protocol
        raw = self.sync_read(ids, p.present_addr, p.position_size)
        return {i: p.position_from_raw(v) for i, v in raw.items()}

    def write_goals(self, ticks: Mapping[int, int]) -> None:
        """Goal positions (ticks) of several servos in one sync write."""
        p = self.protocol
        self.sync_write(p.goal_addr, p.position_size, {i: p.position_to_raw(int(t)) for i, t in ticks.items()})

    def set_torque(self, ids: Iterable[int], on: bool) -> None:
        """Torque on or off, servo by servo, each acknowledged (so a missing servo is named)."""
        for servo_id in ids:
            self.write(servo_id, self.protocol.torque_addr, 1, int(on))

    # -- the exchange ------------------------------------------------------------------------
    def _exchange(self, packet: bytes, ids: Sequence[int], size: int | None, what: str) -> dict[int, bytes]:
        """Send ``packet``, collect one status from each of ``ids``; retry on silence or corruption."""
        with self._lock:
            ser = self._require()
            failure: Exception | None = None
            for attempt in range(self.retries + 1):
                if attempt:
                    self._retried += 1
                self._flush(ser)
                self._send(ser, packet)
                try:
                    return self._collect(ser, ids, size, what)
                except _NoReply as exc:
                    self._timeouts += 1
                    failure = exc
                except BadPacket as exc:
                    failure = exc
            if isinstance(failure, _NoReply):
                missing = failure.missing
                who = f"servo {missing[0]}" if len(missing) == 1 else "servos " + ", ".join(map(str, missing))
                what_fix = "the ID" if len(missing) == 1 else "the IDs"
                raise DeviceError(f"{who} on {self.port} did not answer (timeout {self.timeout * 1e3:.0f} ms): "
                                  f"check power and {what_fix}")
            raise DeviceError(
                f"replies on {self.port} failed their {self.protocol.check_name} {self.retries + 1} times in a row: "
                f"check the wiring and that every servo runs at {self.baud} baud")

    def _collect(self, ser: Any, ids: Sequence[int], size: int | None, what: str) -> dict[int, bytes]:
        pending = list(ids)
        got: dict[int, bytes] = {}
        deadline = time.monotonic() + self.timeout
        while pending:
            status = self.protocol.status(self._next_packet(ser, deadline, pending))
            if status is None or status.servo_id not in pending:
                continue  # an echo of our request or a late reply to an earlier one
            if size is not None and len(status.data) != size:
                continue
            reason = self.protocol.refused(status.error)
            if reason is not None:
                raise DeviceError(f"servo {status.servo_id} on {self.port} refused {what}: {reason}")
            alarm = self.protocol.alarms(status.error)
            if alarm is None:
                self.alerts.pop(status.servo_id, None)
            else:
                self.alerts[status.servo_id] = alarm
            got[status.servo_id] = status.data
            pending.remove(status.servo_id)
            deadline = time.monotonic() + self.timeout  # each servo gets the full timeout after the last
        return got

    def _next_packet(self, ser: Any, deadline: float, pending: Sequence[int]) -> Packet:
        while True:
            packet = self._decoder.next()
            if packet is not None:
                return packet
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise _NoReply(pending)
            try:
                ready, _, _ = select.select([ser.fileno()], [], [], remaining)
                if ready:
                    self._decoder.feed(ser.read(ser.in_waiting or 1))
            except _IO_ERRORS as exc:
                self._lost(exc)

    def _send(self, ser: Any, packet: bytes) -> None:
        try:
            ser.write(packet)
        except _IO_ERRORS as exc:
            self._lost(exc)

    def _flush(self, ser: Any) -> None:
        try:
            ser.reset_input_buffer()
        except _IO_ERRORS as exc:
            self._lost(exc)
        self._decoder.clear()

    def _lost(self, exc: BaseException) -> None:
        """The adapter went away mid-exchange: close the port and say so in one line."""
        args = exc.args
        if isinstance(exc, termios.error) and len(args) == 2:  # termios.error carries (errno, text), unformatted
            reason = f"[Errno {args[0]}] {args[1]}"
        else:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        self._closed_reason = (f"servo bus on {self.port} was disconnected ({reason}): check the USB cable and "
                               f"power, then `teleop-app devices`")
        self.close()
        raise DeviceError(self._closed_reason) from None

    def _require(self) -> Any:
        if self._serial is None:
            raise DeviceError(self._closed_reason or f"servo bus on {self.port} is not open")
        return self._serial

    def _open_error(self, exc: Exception) -> str:
        code = getattr(exc, "errno", None)
        if code == errno.ENOENT:
            return f"serial port {self.port} not found: run `teleop-app devices` to list serial ports"
        if code in (errno.EACCES, errno.EPERM):
            return (f"no permission to open {self.port}: add yourself to the dialout group "
                    f"(sudo usermod -aG dialout $USER, then log in again) or install the udev rule from {UDEV_HINT}")
        if code in (errno.EBUSY, errno.EAGAIN):
            return f"serial port {self.port} is in use by another program (another teleop-app?)"
        return f"cannot open serial port {self.port}: {exc}"
