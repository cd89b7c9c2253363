"""Simulated servos behind a pseudo-terminal, speaking the real Feetech or Dynamixel 2.0 protocol.

The driver under test opens :attr:`ServoEmulator.path` with pyserial exactly as it
would open ``/dev/ttyACM0``; a thread on the other end of the pty decodes its
instruction packets and answers as servos with a register table. Tests set the
present positions (a person moving a leader arm), read the goal positions and
torque flags the driver wrote, and break the link on purpose: silent servos,
dropped, corrupted, late or garbage-prefixed replies, error bits, and an
unplugged adapter.
"""

from __future__ import annotations

import os
import select
import threading
import time
import tty
from collections.abc import Iterable

from drivers.servo import dynamixel, feetech
from drivers.servo.bus import get_protocol
from drivers.servo.protocol import PING, READ, SYNC_READ, SYNC_WRITE, WRITE, BadPacket, Decoder, Packet

TABLE_SIZE = 256


class ServoEmulator:
    """``ids`` servos of one protocol on a new pty. With ``follow_goal`` a torqued servo is at its goal at once."""

    def __init__(self, protocol: str, ids: Iterable[int] = range(1, 7), *, follow_goal: bool = True,
                 position: int = 2048) -> None:
        self.protocol = get_protocol(protocol)
        self.follow_goal = follow_goal
        self.latency = 0.0  # s before each reply
        self.silent: set[int] = set()  # servos that never answer
        self.received: list[Packet] = []  # every instruction packet that arrived intact
        self._lock = threading.Lock()
        self._regs = {i: self._initial_table(i, position) for i in ids}
        self._errors: dict[int, int] = {}
        self._drop = 0
        self._corrupt = 0
        self._garbage = b""
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)  # no echo, no line editing: bytes pass as they are
        self.path = os.ttyname(self._slave)
        self._decoder = Decoder(self.protocol)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name=f"servo-emulator-{protocol}", daemon=True)
        self._thread.start()

    # -- what a test sets and reads ----------------------------------------------------------
    def set_position(self, servo_id: int, ticks: int) -> None:
        """The servo's present position, as if a hand moved the joint."""
        p = self.protocol
        with self._lock:
            self._put(servo_id, p.present_addr, p.position_size, p.position_to_raw(ticks))

    def set_positions(self, ticks: dict[int, int]) -> None:
        for servo_id, value in ticks.items():
            self.set_position(servo_id, value)

    def position(self, servo_id: int) -> int:
        p = self.protocol
        with self._lock:
            return p.position_from_raw(self._get(servo_id, p.present_addr, p.position_size))

    def goal(self, servo_id: int) -> int:
        p = self.protocol
        with self._lock:
            return p.position_from_raw(self._get(servo_id, p.goal_addr, p.position_size))

    def torque(self, servo_id: int) -> bool:
        with self._lock:
            return bool(self._regs[servo_id][self.protocol.torque_addr])

    def count(self, instruction: int) -> int:
        """How many packets with this instruction arrived intact."""
        with self._lock:
            return sum(1 for p in self.received if p.instruction == instruction)

    # -- breaking the link -------------------------------------------------------------------
    def set_error(self, servo_id: int, error: int) -> None:
        """Error byte of this servo's status packets from now on (0 clears it)."""
        with self._lock:
            self._errors[servo_id] = error

    def drop_replies(self, n: int) -> None:
        """Send nothing for the next ``n`` replies."""
        with self._lock:
            self._drop += n

    def corrupt_replies(self, n: int) -> None:
        """Flip the checksum/CRC of the next ``n`` replies."""
        with self._lock:
            self._corrupt += n

    def inject_garbage(self, data: bytes) -> None:
        """Send ``data`` just before the next reply."""
        with self._lock:
            self._garbage += data

    def unplug(self) -> None:
        """Close the pty, as when the USB adapter is pulled out. The path disappears."""
        self._stop.set()
        self._thread.join(timeout=2.0)
        for fd in (self._master, self._slave):
            try:
                os.close(fd)
            except OSError:
                pass

    close = unplug

    def __enter__(self) -> ServoEmulator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.unplug()

    # -- the servos --------------------------------------------------------------------------
    def _initial_table(self, servo_id: int, position: int) -> bytearray:
        regs = bytearray(TABLE_SIZE)
        p = self.protocol
        if p.name == "feetech":
            regs[feetech.MODEL_ADDR : feetech.MODEL_ADDR + 2] = feetech.MODEL_STS3215.to_bytes(2, "little")
            regs[feetech.ID_ADDR] = servo_id
        else:
            regs[dynamixel.MODEL_ADDR : dynamixel.MODEL_ADDR + 2] = dynamixel.MODEL_XL330_M288.to_bytes(2, "little")
            regs[dynamixel.FIRMWARE_ADDR] = 52
            regs[dynamixel.ID_ADDR] = servo_id
        for addr in (p.present_addr, p.goal_addr):
            regs[addr : addr + p.position_size] = p.position_to_raw(position).to_bytes(p.position_size, "little")
        return regs

    def _ping_data(self, servo_id: int) -> bytes:
        """Feetech answers a ping with no data, Dynamixel with its model number and firmware version."""
        if self.protocol.name == "feetech":
            return b""
        regs = self._regs[servo_id]
        return bytes(regs[dynamixel.MODEL_ADDR : dynamixel.MODEL_ADDR + 2]) + bytes(regs[dynamixel.FIRMWARE_ADDR : dynamixel.FIRMWARE_ADDR + 1])

    def _get(self, servo_id: int, addr: int, size: int) -> int:
        return int.from_bytes(self._regs[servo_id][addr : addr + size], "little")

    def _put(self, servo_id: int, addr: int, size: int, value: int) -> None:
        self._regs[servo_id][addr : addr + size] = value.to_bytes(size, "little")

    def _store(self, servo_id: int, addr: int, data: bytes) -> None:
        """A write from the bus, then the servo reacts: a torqued servo goes to its goal."""
        regs, p = self._regs[servo_id], self.protocol
        regs[addr : addr + len(data)] = data
        if self.follow_goal and regs[p.torque_addr]:
            regs[p.present_addr : p.present_addr + p.position_size] = regs[p.goal_addr : p.goal_addr + p.position_size]

    def _serve(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self._master], [], [], 0.05)
            if not ready:
                continue
            try:
                data = os.read(self._master, 4096)
            except OSError:
                return
            self._decoder.feed(data)
            while True:
                try:
                    packet = self._decoder.next()
                except BadPacket:
                    continue  # a servo ignores an instruction that fails its check
                if packet is None:
                    break
                for reply in self._handle(packet):
                    self._reply(reply)

    def _handle(self, packet: Packet) -> list[tuple[int, bytes]]:
        """``(servo id, data)`` of every status this packet asks for, in bus order."""
        p = self.protocol
        with self._lock:
            self.received.append(packet)
            regs = self._regs
            sid, instr = packet.servo_id, packet.instruction
            if instr == PING and sid in regs:
                return [(sid, self._ping_data(sid))]
            if instr == READ and sid in regs:
                addr, rest = p.split_address(packet.params)
                size = int.from_bytes(rest, "little")
                return [(sid, bytes(regs[sid][addr : addr + size]))]
            if instr == WRITE and sid in regs:
                addr, data = p.split_address(packet.params)
                self._store(sid, addr, data)
                return [(sid, b"")]
            if instr == SYNC_READ:
                addr, rest = p.split_address(packet.params)
                size = int.from_bytes(rest[: p.addr_size], "little")
                return [(i, bytes(regs[i][addr : addr + size])) for i in rest[p.addr_size :] if i in regs]
            if instr == SYNC_WRITE:
                addr, rest = p.split_address(packet.params)
                size = int.from_bytes(rest[: p.addr_size], "little")
                chunks = rest[p.addr_size :]
                for k in range(0, len(chunks) - size, size + 1):
                    if chunks[k] in regs:
                        self._store(chunks[k], addr, chunks[k + 1 : k + 1 + size])
            return []

    def _reply(self, reply: tuple[int, bytes]) -> None:
        servo_id, data = reply
        with self._lock:
            if servo_id in self.silent:
                return
            if self._drop:
                self._drop -= 1
                return
            out = bytearray(self.protocol.status_packet(servo_id, self._errors.get(servo_id, 0), data))
            if self._corrupt:
                self._corrupt -= 1
                out[-1] ^= 0xFF
            out[:0] = self._garbage
            self._garbage = b""
            latency = self.latency
        if latency:
            time.sleep(latency)
        try:
            os.write(self._master, bytes(out))
        except OSError:
            pass  # unplugged while answering
