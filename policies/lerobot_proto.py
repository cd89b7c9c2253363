"""The protobuf messages and RPC paths of LeRobot's ``transport.AsyncInference`` service, built without codegen.

The definitions equal LeRobot's ``src/lerobot/transport/services.proto`` for
this service (package ``transport``)::

    enum TransferState { TRANSFER_UNKNOWN = 0; TRANSFER_BEGIN = 1; TRANSFER_MIDDLE = 2; TRANSFER_END = 3; }
    message Observation { TransferState transfer_state = 1; bytes data = 2; }
    message Actions { bytes data = 1; }
    message PolicySetup { bytes data = 1; }
    message Empty {}
    service AsyncInference {
      rpc SendObservations(stream Observation) returns (Empty);
      rpc GetActions(Empty) returns (Actions);
      rpc SendPolicyInstructions(PolicySetup) returns (Empty);
      rpc Ready(Empty) returns (Empty);
    }

The descriptors live in a private pool (no clash with a generated module of
the same file). ``protobuf`` is imported when this module is; import it lazily.
Observations larger than :data:`CHUNK_SIZE` are split into several messages
marked BEGIN, MIDDLE…, END; a message that ends the payload is marked END (a
single-piece payload too), as LeRobot's sender does.
"""

from __future__ import annotations

from collections.abc import Iterator

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

SERVICE = "transport.AsyncInference"
CHUNK_SIZE = 2 * 1024 * 1024  # bytes of payload per streamed message
MAX_MESSAGE_SIZE = 4 * 1024 * 1024  # gRPC send/receive limit both sides set

TRANSFER_UNKNOWN, TRANSFER_BEGIN, TRANSFER_MIDDLE, TRANSFER_END = range(4)


def _file() -> descriptor_pb2.FileDescriptorProto:
    f = descriptor_pb2.FileDescriptorProto(name="transport/services.proto", package="transport", syntax="proto3")
    enum = f.enum_type.add(name="TransferState")
    for number, name in enumerate(("TRANSFER_UNKNOWN", "TRANSFER_BEGIN", "TRANSFER_MIDDLE", "TRANSFER_END")):
        enum.value.add(name=name, number=number)
    F = descriptor_pb2.FieldDescriptorProto
    obs = f.message_type.add(name="Observation")
    obs.field.add(name="transfer_state", number=1, type=F.TYPE_ENUM, type_name=".transport.TransferState",
                  label=F.LABEL_OPTIONAL)
    obs.field.add(name="data", number=2, type=F.TYPE_BYTES, label=F.LABEL_OPTIONAL)
    for name in ("Actions", "PolicySetup"):
        f.message_type.add(name=name).field.add(name="data", number=1, type=F.TYPE_BYTES, label=F.LABEL_OPTIONAL)
    f.message_type.add(name="Empty")
    service = f.service.add(name="AsyncInference")
    for method, request, response, streaming in (
            ("SendObservations", "Observation", "Empty", True), ("GetActions", "Empty", "Actions", False),
            ("SendPolicyInstructions", "PolicySetup", "Empty", False), ("Ready", "Empty", "Empty", False)):
        service.method.add(name=method, input_type=f".transport.{request}", output_type=f".transport.{response}",
                           client_streaming=streaming)
    return f


_pool = descriptor_pool.DescriptorPool()
_pool.Add(_file())
Observation = message_factory.GetMessageClass(_pool.FindMessageTypeByName("transport.Observation"))
Actions = message_factory.GetMessageClass(_pool.FindMessageTypeByName("transport.Actions"))
PolicySetup = message_factory.GetMessageClass(_pool.FindMessageTypeByName("transport.PolicySetup"))
Empty = message_factory.GetMessageClass(_pool.FindMessageTypeByName("transport.Empty"))


def method(name: str) -> str:
    """The gRPC path of a method of the service, e.g. ``/transport.AsyncInference/Ready``."""
    return f"/{SERVICE}/{name}"


def pieces(payload: bytes) -> Iterator[Observation]:
    """``payload`` as the stream of Observation messages LeRobot's sender produces."""
    sent = 0
    while sent < len(payload):
        n = min(CHUNK_SIZE, len(payload) - sent)
        if sent + CHUNK_SIZE >= len(payload):
            state = TRANSFER_END
        elif sent == 0:
            state = TRANSFER_BEGIN
        else:
            state = TRANSFER_MIDDLE
        yield Observation(transfer_state=state, data=payload[sent: sent + n])
        sent += n


def joined(messages: Iterator[Observation]) -> bytes:
    """The payload of a stream of Observation pieces (what the server reassembles); ValueError if cut short."""
    buffer = bytearray()
    for message in messages:
        if message.transfer_state == TRANSFER_BEGIN:
            buffer = bytearray(message.data)
        elif message.transfer_state == TRANSFER_MIDDLE:
            buffer += message.data
        elif message.transfer_state == TRANSFER_END:
            buffer += message.data
            return bytes(buffer)
        else:
            raise ValueError(f"observation piece with transfer state {message.transfer_state}")
    raise ValueError("the observation stream ended before a piece marked END")
