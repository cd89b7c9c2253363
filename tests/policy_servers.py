"""Policy servers for tests, speaking the real protocols over real sockets in a thread.

``OpenPIServer`` is a websocket server (websockets' sync server) following the
openpi protocol: metadata frame on connect, msgpack request/response, a text
frame plus close code 1011 on error, ``GET /healthz``. ``OpenVLAServer`` is an
``http.server`` answering ``POST /act`` like OpenVLA's deploy script.
The test decides each answer with ``respond(observation, n)`` (n counts from 1
over the server's life) returning one of:

``("reply", dict)``, ``("error", traceback_text)``, ``("close",)`` (drop the
connection without answering), ``("stall", seconds, dict)``.
"""

from __future__ import annotations

import http
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

from websockets.exceptions import ConnectionClosed
from websockets.frames import CloseCode
from websockets.sync.server import serve

from policies import json_numpy, msgpack_numpy

Respond = Callable[[dict, int], tuple]


class OpenPIServer:
    def __init__(self, respond: Respond, metadata: dict | None = None) -> None:
        self.respond = respond
        self.metadata = {} if metadata is None else metadata
        self.requests: list[dict] = []
        self.connections = 0
        self._lock = threading.Lock()
        self._server = serve(self._handle, "127.0.0.1", 0, compression=None, max_size=None,
                             process_request=self._health)
        self.port = self._server.socket.getsockname()[1]
        self.url = f"ws://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def _health(self, connection, request):
        if request.path == "/healthz":
            return connection.respond(http.HTTPStatus.OK, "OK\n")
        return None

    def _handle(self, ws) -> None:
        with self._lock:
            self.connections += 1
        ws.send(msgpack_numpy.packb(self.metadata))
        try:
            for message in ws:
                obs = msgpack_numpy.unpackb(message)
                with self._lock:
                    self.requests.append(obs)
                    n = len(self.requests)
                answer = self.respond(obs, n)
                if answer[0] == "stall":
                    time.sleep(answer[1])
                    answer = ("reply", answer[2])
                if answer[0] == "reply":
                    ws.send(msgpack_numpy.packb(answer[1]))
                elif answer[0] == "error":
                    ws.send(answer[1])  # a text frame: the traceback
                    ws.close(CloseCode.INTERNAL_ERROR, "internal server error")
                    return
                elif answer[0] == "close":
                    ws.close()
                    return
        except ConnectionClosed:
            pass

    def close(self) -> None:
        self._server.shutdown()
        self._thread.join(timeout=2)


class OpenVLAServer:
    def __init__(self, respond: Respond) -> None:
        self.respond = respond
        self.requests: list[dict] = []
        self.paths: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                payload = json_numpy.loads(body)
                outer.paths.append(self.path)
                outer.requests.append(payload)
                answer = outer.respond(payload, len(outer.requests))
                if answer[0] == "stall":
                    time.sleep(answer[1])
                    answer = ("reply", answer[2])
                text = json_numpy.dumps(answer[1]) if answer[0] == "reply" else json.dumps("error")
                data = text.encode()
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except BrokenPipeError:
                    pass  # the client gave up waiting (timeout tests)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/act"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=2)
