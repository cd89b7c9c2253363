"""An emulated SpaceMouse at the HID layer: real report bytes that the real pyspacemouse parses.

The emulated device stands where easyhid/hidapi stand: it queues raw HID reports
(id 1: six little-endian int16 axes, id 3: button bitmask, as a SpaceMouse
Wireless sends them) in a 64-report ring like the kernel's hidraw buffer, and
a producer thread can send them at 200 Hz. :class:`Bus` is what
``drivers.spacemouse.default_hid_enumerate`` would list.
"""

import collections
import struct
import threading
import time

from easyhid import HIDException

WIRELESS = (0x256F, 0xC62E)  # SpaceMouse Wireless: all six axes in report 1


def motion_report(x=0, y=0, z=0, roll=0, pitch=0, yaw=0) -> bytes:
    return struct.pack("<B6h", 1, x, y, z, roll, pitch, yaw)


def button_report(mask: int) -> bytes:
    return bytes([3, mask]) + bytes(11)


class FakeHID:
    """An easyhid-like HID interface of a SpaceMouse whose reports the test writes."""

    def __init__(self, ids=WIRELESS, path="/dev/hidraw-fake0", refuse_open=False) -> None:
        self.vendor_id, self.product_id = ids
        self.path = path
        self.usage_page, self.usage = 0x01, 0x08
        self.product_string, self.manufacturer_string = "SpaceMouse Wireless", "3Dconnexion"
        self.release_number, self.serial_number = 0x0437, ""
        self.refuse_open = refuse_open
        self.queue = collections.deque(maxlen=64)  # hidraw keeps the newest 64 reports
        self.lock = threading.Lock()
        self.unplugged = False
        self.produced = 0  # reports sent so far
        self.opened = 0

    def open(self) -> None:
        if self.refuse_open:
            raise HIDException("Failed to open device")
        self.opened += 1

    def close(self) -> None:
        pass

    def set_nonblocking(self, enable: bool) -> None:
        assert enable

    def read(self, size=64, timeout=None) -> bytearray:
        with self.lock:
            if self.unplugged:
                raise HIDException("Failed to read from HID device: -1")
            return bytearray(self.queue.popleft()[:size]) if self.queue else bytearray()

    def send(self, report: bytes) -> None:
        with self.lock:
            self.queue.append(report)
            self.produced += 1


class Producer:
    """Sends ``make(n)`` as report n at ``rate_hz`` on its own thread, as a held SpaceMouse does."""

    def __init__(self, hid: FakeHID, make, rate_hz: float = 200.0) -> None:
        self.hid, self.make, self.period = hid, make, 1.0 / rate_hz
        self.pause = threading.Lock()  # held by a consumer: no report is sent until it lets go
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        n = 0
        deadline = time.monotonic()
        while not self._stop.is_set():
            with self.pause:
                self.hid.send(self.make(n))
            n += 1
            deadline += self.period
            self._stop.wait(max(0.0, deadline - time.monotonic()))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


class Bus:
    """What is plugged in: the HID enumeration the driver sees."""

    def __init__(self, *devices: FakeHID) -> None:
        self.devices = list(devices)

    def __call__(self) -> list[FakeHID]:
        return list(self.devices)
