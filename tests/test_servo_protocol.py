"""Feetech and Dynamixel 2.0 packets: known wire vectors, checks, byte stuffing, a decoder that resyncs."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.servo.dynamixel import DYNAMIXEL, crc16, stuff, unstuff
from drivers.servo.feetech import FEETECH, checksum
from drivers.servo.protocol import PING, READ, SYNC_READ, SYNC_WRITE, WRITE, BadPacket, Decoder, Packet, Status


def hexbytes(text):
    return bytes.fromhex(text)


# -- Feetech -----------------------------------------------------------------------------------
def test_feetech_known_packets():
    assert FEETECH.encode(1, PING) == hexbytes("FF FF 01 02 01 FB")
    # read 2 bytes of present position (56) from servo 1
    assert FEETECH.encode(1, READ, FEETECH.read_params(56, 2)) == hexbytes("FF FF 01 04 02 38 02 BE")
    # torque on for servo 1
    assert FEETECH.encode(1, WRITE, FEETECH.write_params(40, b"\x01")) == hexbytes("FF FF 01 04 03 28 01 CE")


def test_feetech_checksum_is_inverted_sum_of_id_length_instruction_params():
    body = bytes([3, 4, 0x02, 0x38, 0x02])
    assert checksum(body) == (~(3 + 4 + 2 + 0x38 + 2)) & 0xFF
    assert checksum(bytes([0xFE, 0xFF, 0xFF])) == (~(0xFE + 0xFF + 0xFF)) & 0xFF  # only the low byte counts


def test_feetech_sync_packets_layout():
    read = FEETECH.encode(0xFE, SYNC_READ, FEETECH.sync_read_params(56, 2, [1, 2, 3]))
    assert read[:5] == hexbytes("FF FF FE 07 82") and read[5:10] == bytes([56, 2, 1, 2, 3])
    write = FEETECH.encode(0xFE, SYNC_WRITE, FEETECH.sync_write_params(42, 2, {1: b"\x00\x08", 2: b"\xff\x0f"}))
    assert write[5:-1] == bytes([42, 2, 1, 0x00, 0x08, 2, 0xFF, 0x0F])
    assert FEETECH.verify(write)


def test_feetech_status_carries_error_byte_in_instruction_slot():
    raw = FEETECH.status_packet(5, 0x20, b"\x00\x08")
    packet = FEETECH.unpack(raw)
    assert FEETECH.status(packet) == Status(5, 0x20, b"\x00\x08")
    assert FEETECH.alarms(0x20) == "overload"
    assert FEETECH.alarms(0x05) == "input voltage out of range, overheat"
    assert FEETECH.refused(0x20) is None  # alarms do not stop the instruction


def test_feetech_position_sign_magnitude():
    assert FEETECH.position_from_raw(2048) == 2048
    assert FEETECH.position_from_raw(0x8000 | 25) == -25
    assert FEETECH.position_to_raw(-25) == 0x8019
    assert FEETECH.position_to_raw(4095) == 4095


# -- Dynamixel 2.0 -----------------------------------------------------------------------------
def test_dynamixel_known_packets_from_the_e_manual():
    assert DYNAMIXEL.encode(1, PING) == hexbytes("FF FF FD 00 01 03 00 01 19 4E")
    # read present position (132, 4 bytes) of servo 1
    assert DYNAMIXEL.encode(1, READ, DYNAMIXEL.read_params(132, 4)) == hexbytes("FF FF FD 00 01 07 00 02 84 00 04 00 1D 15")
    # ping status of servo 1: model 1030 (XM430-W210), firmware 38
    assert DYNAMIXEL.status_packet(1, 0, bytes([0x06, 0x04, 0x26])) == hexbytes("FF FF FD 00 01 07 00 55 00 06 04 26 65 5D")


def test_dynamixel_crc16_polynomial_8005():
    assert crc16(hexbytes("FF FF FD 00 01 03 00 01")) == 0x4E19
    assert crc16(b"") == 0


def test_dynamixel_byte_stuffing_on_the_wire():
    params = DYNAMIXEL.write_params(116, hexbytes("FF FF FD 07"))
    wire = DYNAMIXEL.encode(1, WRITE, params)
    assert hexbytes("FF FF FD FD 07") in wire
    length = int.from_bytes(wire[5:7], "little")
    assert length == len(wire) - 7  # the length counts the stuffed bytes
    assert DYNAMIXEL.verify(wire)
    assert DYNAMIXEL.unpack(wire) == Packet(1, WRITE, params)


@given(st.binary(max_size=64))
def test_stuffing_round_trips_and_hides_the_header(payload):
    stuffed = stuff(payload)
    assert unstuff(stuffed) == payload
    assert DYNAMIXEL.header not in stuffed  # a payload can never look like the start of a packet


@given(st.sampled_from([FEETECH, DYNAMIXEL]), st.integers(0, 252), st.integers(0, 255), st.binary(max_size=120))
def test_any_packet_decodes_to_what_was_encoded(protocol, servo_id, instruction, params):
    decoder = Decoder(protocol)
    decoder.feed(protocol.encode(servo_id, instruction, params))
    assert decoder.next() == Packet(servo_id, instruction, params)
    assert decoder.next() is None


def test_dynamixel_status_and_errors():
    status = DYNAMIXEL.status(DYNAMIXEL.unpack(DYNAMIXEL.status_packet(2, 0x84, b"")))
    assert status == Status(2, 0x84, b"")
    assert DYNAMIXEL.refused(0x84) == "data range error"
    assert "hardware error" in DYNAMIXEL.alarms(0x84)
    assert DYNAMIXEL.refused(0x80) is None
    # an instruction packet (e.g. our own request echoed back) is no status
    assert DYNAMIXEL.status(DYNAMIXEL.unpack(DYNAMIXEL.encode(2, READ, DYNAMIXEL.read_params(132, 4)))) is None


def test_dynamixel_positions_are_signed_32_bit():
    assert DYNAMIXEL.position_from_raw(DYNAMIXEL.position_to_raw(-300)) == -300
    assert DYNAMIXEL.position_to_raw(-1) == 0xFFFFFFFF


# -- the decoder -------------------------------------------------------------------------------
@pytest.mark.parametrize("protocol", [FEETECH, DYNAMIXEL], ids=lambda p: p.name)
def test_decoder_skips_garbage_and_reads_byte_by_byte(protocol):
    good = protocol.status_packet(3, 0, b"\x10\x20")
    stream = b"\x00\x13\xff" + protocol.header[:2] + b"\x37" + good + protocol.status_packet(4, 0, b"")
    decoder = Decoder(protocol)
    got = []
    for byte in stream:
        decoder.feed(bytes([byte]))
        while (packet := decoder.next()) is not None:
            got.append(protocol.status(packet))
    assert got == [Status(3, 0, b"\x10\x20"), Status(4, 0, b"")]
    assert decoder.garbage > 0 and decoder.corrupt == 0


@pytest.mark.parametrize("protocol", [FEETECH, DYNAMIXEL], ids=lambda p: p.name)
def test_decoder_reports_a_corrupt_packet_then_finds_the_next(protocol):
    bad = bytearray(protocol.status_packet(1, 0, b"\x01\x02"))
    bad[-1] ^= 0x55
    decoder = Decoder(protocol)
    decoder.feed(bytes(bad) + protocol.status_packet(2, 0, b"\x03\x04"))
    with pytest.raises(BadPacket):
        decoder.next()
    assert protocol.status(decoder.next()) == Status(2, 0, b"\x03\x04")
    assert decoder.corrupt == 1


def test_decoder_waits_for_the_rest_of_a_split_packet():
    wire = DYNAMIXEL.status_packet(7, 0, bytes(range(10)))
    decoder = Decoder(DYNAMIXEL)
    decoder.feed(wire[:9])
    assert decoder.next() is None
    decoder.feed(wire[9:])
    assert DYNAMIXEL.status(decoder.next()) == Status(7, 0, bytes(range(10)))
    assert decoder.garbage == 0
