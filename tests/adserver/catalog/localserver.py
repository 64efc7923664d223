"""A real HTTP server on loopback for the image tests: routes answer what a store's server (or a hostile
one) would."""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

Route = Callable[[BaseHTTPRequestHandler], None]


class LocalServer:
    """``routes[path] = handler(request)``; ``requests`` lists ``(path, headers)`` as they came."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.requests: list[tuple[str, dict[str, str]]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802 - the standard library's name
                server.requests.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
                route = server.routes.get(self.path.split("?", 1)[0])
                if route is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                try:
                    route(self)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def body(self, path: str, data: bytes, content_type: str = "application/octet-stream", status: int = 200,
             headers: dict[str, str] | None = None) -> None:
        def route(req: BaseHTTPRequestHandler) -> None:
            req.send_response(status)
            req.send_header("Content-Type", content_type)
            req.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                req.send_header(name, value)
            req.end_headers()
            req.wfile.write(data)

        self.routes[path] = route

    def redirect(self, path: str, location: str, status: int = 302) -> None:
        def route(req: BaseHTTPRequestHandler) -> None:
            req.send_response(status)
            req.send_header("Location", location)
            req.send_header("Content-Length", "0")
            req.end_headers()

        self.routes[path] = route

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
