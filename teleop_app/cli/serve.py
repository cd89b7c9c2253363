"""``teleop-app serve CHECKPOINT``: serve a policy over the openpi websocket protocol.

The robot side connects with ``teleop-app run-policy --policy ws://HOST:PORT``
(or openpi's own client). Loopback only unless ``--host`` says otherwise; then
one line warns that anyone on the network may call it (the protocol has no
authentication). Ctrl+C (or SIGTERM) closes the listening socket and every
connection, and the command returns 0.

Threads: the main thread waits for a signal; the server accepts on another
thread and answers each connection on its own (see :mod:`policies.serve`).
"""

from __future__ import annotations

import argparse
import ipaddress
import signal
import sys
import threading

from teleop_app.cli.errors import fail


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="serve a policy checkpoint over the openpi websocket protocol",
                       description="Serve a policy checkpoint over the openpi websocket protocol; the robot side "
                                   "runs `teleop-app run-policy --policy ws://HOST:PORT`.")
    p.add_argument("checkpoint", help="policy checkpoint file (e.g. a .pt of `teleop-app train`)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1; 0.0.0.0 opens it to the network, "
                        "without authentication)")
    p.add_argument("--port", type=int, default=8000, help="port to listen on (default 8000, openpi's)")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where the policy runs (default cpu)")
    p.add_argument("--obs-map", action="append", default=None, metavar="KEY=STREAM",
                   help="observation key KEY carries rig stream STREAM (as run-policy's --obs-map; default: "
                        "run-policy's default mapping); repeat for each key")


def run(args: argparse.Namespace) -> int:
    from policies.base import PolicyError
    from policies.loading import PolicyLoadError

    try:
        return _serve(args)
    except (PolicyLoadError, PolicyError, ValueError, OSError) as exc:
        return fail(exc)


def _serve(args: argparse.Namespace) -> int:
    from policies.loading import PolicyLoadError, is_server, key_stream, load_policy
    from policies.openpi_client import DEFAULT_MAPPING
    from policies.serve import PolicyServer

    spec = args.checkpoint.strip()
    if is_server(spec):
        raise PolicyLoadError(f"{spec} is a policy server already: serve takes a checkpoint file")
    if not 0 <= args.port <= 65535:
        raise ValueError(f"--port {args.port}: a port is 0..65535")
    mapping = DEFAULT_MAPPING if args.obs_map is None else dict(key_stream(i) for i in args.obs_map)
    options = {} if args.device == "cpu" else {"device": args.device}
    try:
        policy = load_policy(spec, **options)
    except TypeError:
        raise PolicyLoadError(f"{spec}: this kind of checkpoint cannot be placed with --device") from None
    try:
        try:
            server = PolicyServer(policy, mapping, args.host, args.port,
                                  on_event=lambda m: print(f"serve: {m}", file=sys.stderr, flush=True))
        except OSError as exc:
            raise OSError(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}") from None
        info = policy.info
        print(f"serving {info.name or spec} ({info.action_dim}-dim {info.action_kind.value} actions, "
              f"{info.chunk_length or 'any number of'} per chunk) on ws://{server.host}:{server.port} "
              f"(health: http://{server.host}:{server.port}/healthz); Ctrl+C stops", file=sys.stderr, flush=True)
        if not _loopback(args.host):
            print(f"warning: listening on {args.host}:{server.port} is reachable from the network and has no "
                  "authentication: anyone who can connect can run the policy", file=sys.stderr, flush=True)
        stop = threading.Event()
        previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
        thread = threading.Thread(target=server.serve_forever, name="serve-accept", daemon=True)
        thread.start()
        try:
            while not stop.wait(0.5) and thread.is_alive():
                pass
        finally:
            server.close()
            thread.join(timeout=5)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        print(f"serve: stopped after {server.requests} request(s)", file=sys.stderr)
    finally:
        policy.close()
    return 0


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
