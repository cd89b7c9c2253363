"""Half-duplex serial servo buses: the Feetech STS and Dynamixel 2.0 wire protocols.

:mod:`~drivers.servo.feetech` and :mod:`~drivers.servo.dynamixel` encode and
decode packets (pure functions, no I/O); :mod:`~drivers.servo.bus` talks to the
servos over a serial port with timeouts, retries and resynchronisation;
:mod:`~drivers.servo.emulator` answers as simulated servos on a pseudo-terminal
so the real bus code runs in tests without hardware.
"""
