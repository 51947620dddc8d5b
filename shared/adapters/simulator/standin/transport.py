"""How requests reach the stand-in: in process (a ``requests`` adapter, no socket) or over a local socket."""

from __future__ import annotations

import io
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import requests
import requests.adapters
from requests.structures import CaseInsensitiveDict

if TYPE_CHECKING:
    from .server import AzureStandIn


class InProcessAdapter(requests.adapters.BaseAdapter):
    """A ``requests`` adapter that hands each request to the stand-in in this process (the httpx
    MockTransport habit): azure-core's own ``RequestsTransport`` and pipeline, minus the socket."""

    def __init__(self, standin: AzureStandIn) -> None:
        super().__init__()
        self.standin = standin

    def send(self, request: requests.PreparedRequest, stream: bool = False, timeout: Any = None,
             verify: Any = True, cert: Any = None, proxies: Any = None) -> requests.Response:
        parts = urlsplit(request.url or "")
        raw = parts.path + (f"?{parts.query}" if parts.query else "")
        body: Any = request.body or b""
        data = body.encode() if isinstance(body, str) else bytes(body)
        status, headers, payload = self.standin.serve(str(request.method), raw, data, request.headers)
        resp = requests.Response()
        resp.status_code = status
        resp.reason = HTTPStatus(status).phrase
        resp.headers = CaseInsensitiveDict(headers)
        resp._content = payload
        resp.raw = io.BytesIO(payload)
        resp.url = request.url or ""
        resp.request = request
        resp.encoding = "utf-8"
        return resp

    def waited(self, seconds: float) -> None:
        """The client waited (azure-core's polling or retry sleep, at no wall cost): the stand-in's clock moves."""
        self.standin.client_waits()

    def close(self) -> None:
        return None


class _RequestClock:
    """The stand-in's request clock as the adapters' limiter sees it: waiting moves it, not the world."""

    def __init__(self, standin: AzureStandIn) -> None:
        self._standin = standin

    def now(self) -> float:
        with self._standin._lock:
            return self._standin.now_seconds()

    def sleep_until(self, t: float) -> None:
        self._standin.sleep_until(t)


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that drops an idle keep-alive connection is not an error; anything else is reported."""
        import sys

        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    standin: AzureStandIn
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        status, headers, payload = self.standin.serve(self.command, self.path, body, self.headers)
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if payload:
            self.wfile.write(payload)

    do_GET = do_PUT = do_PATCH = do_POST = do_DELETE = _serve
