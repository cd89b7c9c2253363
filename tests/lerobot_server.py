"""A LeRobot async-inference policy server for tests: the ``transport.AsyncInference`` gRPC service on a real port.

It behaves as LeRobot's ``policy_server.py`` does on the wire: ``Ready``
resets it, ``SendPolicyInstructions`` takes a pickled ``RemotePolicyConfig``,
``SendObservations`` reassembles the BEGIN/MIDDLE/END pieces of a pickled
``TimedObservation`` and keeps only the latest, ``GetActions`` waits up to
``queue_timeout_s`` for one and answers a pickled list of ``TimedAction``
(torch tensors), or an empty message when none came. The test decides each
answer with ``respond(timed_observation, n)`` returning ``("reply", actions
[k, dim])``, ``("stall", seconds, actions)`` or ``("raw", bytes)`` (sent as is).
Messages are the ones of :mod:`policies.lerobot_proto`; the pickles those of
:mod:`policies.lerobot_pickle` under LeRobot's class names.
"""

from __future__ import annotations

import queue
import time
from concurrent import futures
from typing import Callable

import grpc
import torch

from policies import lerobot_pickle as wire
from policies import lerobot_proto as pb

Respond = Callable[[wire.TimedObservation, int], tuple]


class LeRobotServer:
    def __init__(self, respond: Respond, *, queue_timeout_s: float = 0.5, dt: float = 0.01) -> None:
        self.respond = respond
        self.queue_timeout_s = queue_timeout_s
        self.dt = dt
        self.calls: list[str] = []
        self.setups: list[wire.RemotePolicyConfig] = []
        self.observations: list[wire.TimedObservation] = []
        self.piece_states: list[list[int]] = []
        self._queue: queue.Queue = queue.Queue(maxsize=1)
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=4), options=[
            ("grpc.max_receive_message_length", pb.MAX_MESSAGE_SIZE),
            ("grpc.max_send_message_length", pb.MAX_MESSAGE_SIZE)])
        handlers = {
            "Ready": grpc.unary_unary_rpc_method_handler(
                self._ready, request_deserializer=pb.Empty.FromString, response_serializer=pb.Empty.SerializeToString),
            "SendPolicyInstructions": grpc.unary_unary_rpc_method_handler(
                self._setup, request_deserializer=pb.PolicySetup.FromString,
                response_serializer=pb.Empty.SerializeToString),
            "SendObservations": grpc.stream_unary_rpc_method_handler(
                self._observations, request_deserializer=pb.Observation.FromString,
                response_serializer=pb.Empty.SerializeToString),
            "GetActions": grpc.unary_unary_rpc_method_handler(
                self._actions, request_deserializer=pb.Empty.FromString,
                response_serializer=_serialize_actions_or_empty),
        }
        self._server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(pb.SERVICE, handlers),))
        self.port = self._server.add_insecure_port("127.0.0.1:0")
        self.url = f"lerobot+grpc://127.0.0.1:{self.port}"
        self._server.start()

    def _ready(self, request, context):
        self.calls.append("Ready")
        self._queue = queue.Queue(maxsize=1)
        return pb.Empty()

    def _setup(self, request, context):
        self.calls.append("SendPolicyInstructions")
        config = wire.loads(request.data)
        assert isinstance(config, wire.RemotePolicyConfig), type(config)
        self.setups.append(config)
        return pb.Empty()

    def _observations(self, request_iterator, context):
        self.calls.append("SendObservations")
        pieces = list(request_iterator)
        self.piece_states.append([p.transfer_state for p in pieces])
        obs = wire.loads(pb.joined(iter(pieces)))
        self.observations.append(obs)
        if self._queue.full():
            self._queue.get_nowait()
        self._queue.put(obs)
        return pb.Empty()

    def _actions(self, request, context):
        self.calls.append("GetActions")
        try:
            obs = self._queue.get(timeout=self.queue_timeout_s)
        except queue.Empty:
            return pb.Empty()
        answer = self.respond(obs, len(self.observations))
        if answer[0] == "raw":
            return pb.Actions(data=answer[1])
        if answer[0] == "stall":
            time.sleep(answer[1])
            answer = ("reply", answer[2])
        chunk = [wire.TimedAction(obs.timestamp + i * self.dt, obs.timestep + i, torch.as_tensor(a))
                 for i, a in enumerate(answer[1])]
        return pb.Actions(data=wire.dumps(chunk))

    def close(self) -> None:
        """Stop answering: connections drop, later calls find nothing listening."""
        self._server.stop(grace=None).wait(5)


def _serialize_actions_or_empty(message) -> bytes:
    """LeRobot's GetActions answers an Empty when no observation came; on the wire both are bytes."""
    return message.SerializeToString()


def hold(obs: wire.TimedObservation, k: int = 10) -> list:
    """A chunk holding the observed joints."""
    q = [v for key, v in obs.observation.items() if key.endswith(".pos")]
    return [torch.tensor(q, dtype=torch.float32) for _ in range(k)]

