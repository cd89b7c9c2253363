"""Dynamixel protocol 2.0 (Koch and GELLO leader arms: XL330/XL430 servos).

Packet: ``FF FF FD 00 id len_lo len_hi instr params… crc_lo crc_hi``; ``len``
counts the instruction, the (stuffed) params and the CRC. The CRC is CRC-16
with polynomial 0x8005 (init 0, no reflection) over everything before it.
Inside the instruction and params, every ``FF FF FD`` is sent as
``FF FF FD FD`` (byte stuffing) so the header never appears in a payload.
A status packet has instruction 0x55 and the error byte as its first param.
"""

from __future__ import annotations

from drivers.servo.protocol import Packet, Status, WireProtocol

STATUS = 0x55
# X-series control table (the registers the app uses)
MODEL_ADDR = 0  # 2 bytes
FIRMWARE_ADDR = 6
ID_ADDR = 7
TORQUE_ENABLE = 64
HARDWARE_ERROR = 70
GOAL_POSITION = 116  # 4 bytes
PRESENT_POSITION = 132  # 4 bytes, signed
MODEL_XL330_M288 = 1200

# Error numbers in bits 0-6 of the status error byte: the instruction was not carried out.
ERRORS = {
    1: "result fail",
    2: "instruction error",
    3: "CRC error",
    4: "data range error",
    5: "data length error",
    6: "data limit error",
    7: "access error",
}
HARDWARE_ALERT = 0x80
MAX_LENGTH = 1024  # longer length fields are taken for garbage: nothing the app sends or reads is near
_PATTERN = b"\xff\xff\xfd"


def _crc_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x8005) if crc & 0x8000 else (crc << 1)
        table.append(crc & 0xFFFF)
    return table


_TABLE = _crc_table()


def crc16(data: bytes | bytearray) -> int:
    crc = 0
    for byte in data:
        crc = ((crc << 8) ^ _TABLE[((crc >> 8) ^ byte) & 0xFF]) & 0xFFFF
    return crc


def stuff(payload: bytes) -> bytes:
    """Insert ``FD`` after every ``FF FF FD`` of the instruction and params."""
    out = bytearray()
    for byte in payload:
        out.append(byte)
        if out[-3:] == _PATTERN:
            out.append(0xFD)
    return bytes(out)


def unstuff(payload: bytes | bytearray) -> bytes:
    """Undo :func:`stuff`: drop the ``FD`` that follows every ``FF FF FD``."""
    out = bytearray()
    i = 0
    while i < len(payload):
        out.append(payload[i])
        if out[-3:] == _PATTERN and i + 1 < len(payload) and payload[i + 1] == 0xFD:
            i += 1
        i += 1
    return bytes(out)


class Dynamixel(WireProtocol):
    name = "dynamixel"
    header = b"\xff\xff\xfd\x00"
    addr_size = 2
    check_name = "CRC"
    default_baud = 57_600  # factory setting of X-series servos
    max_id = 252
    torque_addr = TORQUE_ENABLE
    goal_addr = GOAL_POSITION
    present_addr = PRESENT_POSITION
    position_size = 4

    def encode(self, servo_id: int, instruction: int, params: bytes = b"") -> bytes:
        payload = stuff(bytes([instruction]) + params)
        packet = self.header + bytes([servo_id]) + (len(payload) + 2).to_bytes(2, "little") + payload
        return packet + crc16(packet).to_bytes(2, "little")

    def frame_length(self, buf: bytes | bytearray) -> int | None:
        if len(buf) < 7:
            return None
        length = buf[5] | buf[6] << 8
        if buf[4] > 0xFE or not 3 <= length <= MAX_LENGTH:
            return -1
        return 7 + length

    def verify(self, frame: bytes | bytearray) -> bool:
        return crc16(frame[:-2]) == int.from_bytes(frame[-2:], "little")

    def unpack(self, frame: bytes | bytearray) -> Packet:
        payload = unstuff(frame[7:-2])
        return Packet(frame[4], payload[0], payload[1:])

    def status(self, packet: Packet) -> Status | None:
        if packet.instruction != STATUS or not packet.params:
            return None
        return Status(packet.servo_id, packet.params[0], packet.params[1:])

    def status_packet(self, servo_id: int, error: int, data: bytes = b"") -> bytes:
        return self.encode(servo_id, STATUS, bytes([error]) + data)

    def refused(self, error: int) -> str | None:
        number = error & 0x7F
        return ERRORS.get(number, f"error {number}") if number else None

    def alarms(self, error: int) -> str | None:
        return f"hardware error (see register {HARDWARE_ERROR}); the servo needs a reboot" if error & HARDWARE_ALERT else None

    def position_from_raw(self, raw: int) -> int:
        return raw - (1 << 32) if raw & (1 << 31) else raw

    def position_to_raw(self, ticks: int) -> int:
        return ticks & 0xFFFFFFFF


DYNAMIXEL = Dynamixel()
