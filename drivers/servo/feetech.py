"""Feetech SCS/STS serial protocol (SO-100/SO-101 arms, STS3215 servos).

Packet: ``FF FF id len instr params… checksum`` with ``len = len(params) + 2``
and ``checksum = ~(id + len + instr + params) & 0xFF``. A status packet puts
the servo's error byte where the instruction goes. Multi-byte registers are
little-endian (STS series). Positions are 0–4095 per turn; bit 15 of a
position register is a sign bit (sign-magnitude, seen in multi-turn modes).
"""

from __future__ import annotations

from drivers.servo.protocol import Packet, Status, WireProtocol

# STS3215 control table (the registers the app uses)
MODEL_ADDR = 3  # 2 bytes, read only
ID_ADDR = 5
TORQUE_ENABLE = 40
GOAL_POSITION = 42  # 2 bytes
PRESENT_POSITION = 56  # 2 bytes, read only
MODEL_STS3215 = 777

# Status error bits: alarms, reported with replies the servo still carried out.
ERROR_BITS = {
    0x01: "input voltage out of range",
    0x02: "angle sensor error",
    0x04: "overheat",
    0x08: "overcurrent",
    0x20: "overload",
}
_SIGN_BIT = 1 << 15


def checksum(body: bytes | bytearray) -> int:
    """``~(id + len + instr + params) & 0xFF`` over ``body`` = everything between the header and the checksum."""
    return ~sum(body) & 0xFF


class Feetech(WireProtocol):
    name = "feetech"
    header = b"\xff\xff"
    addr_size = 1
    check_name = "checksum"
    default_baud = 1_000_000
    max_id = 253
    torque_addr = TORQUE_ENABLE
    goal_addr = GOAL_POSITION
    present_addr = PRESENT_POSITION
    position_size = 2

    def encode(self, servo_id: int, instruction: int, params: bytes = b"") -> bytes:
        if len(params) > 253:
            raise ValueError(f"feetech packet params are at most 253 bytes, got {len(params)}")
        body = bytes([servo_id, len(params) + 2, instruction]) + params
        return self.header + body + bytes([checksum(body)])

    def frame_length(self, buf: bytes | bytearray) -> int | None:
        if len(buf) < 4:
            return None
        if buf[2] == 0xFF or buf[3] < 2:  # 0xFF is no id: a third FF means the header starts one byte later
            return -1
        return 4 + buf[3]

    def verify(self, frame: bytes | bytearray) -> bool:
        return checksum(frame[2:-1]) == frame[-1]

    def unpack(self, frame: bytes | bytearray) -> Packet:
        return Packet(frame[2], frame[4], bytes(frame[5:-1]))

    def status(self, packet: Packet) -> Status:
        return Status(packet.servo_id, packet.instruction, packet.params)

    def status_packet(self, servo_id: int, error: int, data: bytes = b"") -> bytes:
        return self.encode(servo_id, error, data)

    def refused(self, error: int) -> str | None:
        return None  # every Feetech error bit is an alarm; the instruction was still executed

    def alarms(self, error: int) -> str | None:
        if not error:
            return None
        names = [text for bit, text in ERROR_BITS.items() if error & bit]
        names += [f"error bit {b}" for b in range(8) if error & (1 << b) and (1 << b) not in ERROR_BITS]
        return ", ".join(names)

    def position_from_raw(self, raw: int) -> int:
        return -(raw & ~_SIGN_BIT) if raw & _SIGN_BIT else raw

    def position_to_raw(self, ticks: int) -> int:
        if not -0x7FFF <= ticks <= 0x7FFF:
            raise ValueError(f"feetech position {ticks} does not fit 15 bits and a sign")
        return (-ticks | _SIGN_BIT) if ticks < 0 else ticks


FEETECH = Feetech()
