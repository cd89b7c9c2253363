"""What the Feetech and Dynamixel 2.0 wire protocols share: instructions, packets, a stream decoder.

Both frame every packet as ``header, id, length, instruction, params, check``
and use the same instruction codes; they differ in the header, the width of
the length and address fields, the check (an 8-bit checksum or CRC-16) and how
a status packet carries its error byte. A status packet has the same framing
as an instruction packet, so one decoder serves the host (reading replies)
and the emulator (reading instructions).
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

PING, READ, WRITE, SYNC_READ, SYNC_WRITE = 0x01, 0x02, 0x03, 0x82, 0x83
BROADCAST_ID = 0xFE
TICKS_PER_TURN = 4096  # STS3215 and Dynamixel X series alike


@dataclass(frozen=True, slots=True)
class Packet:
    """One decoded frame. In a Feetech status packet ``instruction`` holds the error byte."""

    servo_id: int
    instruction: int
    params: bytes


@dataclass(frozen=True, slots=True)
class Status:
    """A servo's reply: its id, error byte and the data it returned."""

    servo_id: int
    error: int
    data: bytes


class BadPacket(Exception):
    """A complete frame arrived whose checksum (or CRC) does not match its contents."""


class WireProtocol(abc.ABC):
    """Packet layout of one servo family, and the register addresses the app uses."""

    name: str
    header: bytes
    addr_size: int  # bytes of an address (and of a length) inside READ/WRITE/SYNC params
    check_name: str  # what the user should hear about: "checksum" or "CRC"
    default_baud: int
    max_id: int
    torque_addr: int
    goal_addr: int
    present_addr: int
    position_size: int

    @abc.abstractmethod
    def encode(self, servo_id: int, instruction: int, params: bytes = b"") -> bytes:
        """The bytes on the wire for one packet."""

    @abc.abstractmethod
    def frame_length(self, buf: bytes | bytearray) -> int | None:
        """Total length of the frame whose header starts ``buf``; None if more bytes are needed, -1 if it cannot be one."""

    @abc.abstractmethod
    def verify(self, frame: bytes | bytearray) -> bool: ...

    @abc.abstractmethod
    def unpack(self, frame: bytes | bytearray) -> Packet: ...

    @abc.abstractmethod
    def status(self, packet: Packet) -> Status | None:
        """The status in ``packet``, or None if it is not a status packet."""

    @abc.abstractmethod
    def status_packet(self, servo_id: int, error: int, data: bytes = b"") -> bytes:
        """The bytes a servo sends back (used by the emulator)."""

    @abc.abstractmethod
    def refused(self, error: int) -> str | None:
        """Why the servo did not carry out the instruction, or None if it did."""

    @abc.abstractmethod
    def alarms(self, error: int) -> str | None:
        """Hardware alarms reported alongside a reply that was carried out, or None."""

    @abc.abstractmethod
    def position_from_raw(self, raw: int) -> int:
        """A position register's unsigned value as signed ticks."""

    @abc.abstractmethod
    def position_to_raw(self, ticks: int) -> int:
        """Signed ticks as the unsigned value of a position register."""

    # -- parameter layouts shared by both families ----------------------------------------
    def _n(self, value: int) -> bytes:
        return value.to_bytes(self.addr_size, "little")

    def read_params(self, addr: int, size: int) -> bytes:
        return self._n(addr) + self._n(size)

    def write_params(self, addr: int, data: bytes) -> bytes:
        return self._n(addr) + data

    def sync_read_params(self, addr: int, size: int, ids: Iterable[int]) -> bytes:
        return self._n(addr) + self._n(size) + bytes(ids)

    def sync_write_params(self, addr: int, size: int, values: Mapping[int, bytes]) -> bytes:
        out = bytearray(self._n(addr) + self._n(size))
        for servo_id, data in values.items():
            if len(data) != size:
                raise ValueError(f"sync write of {size} bytes got {len(data)} for servo {servo_id}")
            out += bytes([servo_id]) + data
        return bytes(out)

    def split_address(self, params: bytes) -> tuple[int, bytes]:
        """``(address, rest)`` of READ/WRITE/SYNC params."""
        return int.from_bytes(params[: self.addr_size], "little"), params[self.addr_size :]


class Decoder:
    """Finds packets in a byte stream, skipping garbage and resynchronising after corruption."""

    def __init__(self, protocol: WireProtocol) -> None:
        self.protocol = protocol
        self._buf = bytearray()
        self.garbage = 0  # bytes skipped because no valid packet started there
        self.corrupt = 0  # complete frames that failed their check

    def feed(self, data: bytes) -> None:
        self._buf += data

    def clear(self) -> None:
        self._buf.clear()

    def next(self) -> Packet | None:
        """The next valid packet, or None until more bytes arrive.

        Raises :class:`BadPacket` for a frame that fails its check; only its first
        byte is dropped, so a real packet hiding inside it is still found.
        """
        buf, header, proto = self._buf, self.protocol.header, self.protocol
        while True:
            start = buf.find(header)
            if start < 0:
                keep = len(header) - 1  # the tail may be the start of a header
                drop = max(len(buf) - keep, 0)
                self._skip(drop)
                return None
            self._skip(start)
            n = proto.frame_length(buf)
            if n is None:
                return None
            if n > 0 and len(buf) < n:
                # Still incomplete. A garbage "header" with a large length would hold
                # back every packet behind it: skip to a complete valid packet if one follows.
                later = self._complete_packet_after_start()
                if later is None:
                    return None
                self._skip(later)
                continue
            if n < 0:
                self._skip(1)
                continue
            frame = bytes(buf[:n])
            if not proto.verify(frame):
                self.corrupt += 1
                del buf[:1]
                raise BadPacket(frame.hex(" "))
            del buf[:n]
            return proto.unpack(frame)

    def _complete_packet_after_start(self) -> int | None:
        buf, proto = self._buf, self.protocol
        i = buf.find(proto.header, 1)
        while i >= 0:
            n = proto.frame_length(buf[i:])
            if n is not None and 0 < n <= len(buf) - i and proto.verify(buf[i : i + n]):
                return i
            i = buf.find(proto.header, i + 1)
        return None

    def _skip(self, n: int) -> None:
        if n:
            self.garbage += n
            del self._buf[:n]
