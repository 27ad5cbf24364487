"""A local HTTP file server for download tests (http.server on 127.0.0.1 in a thread; nothing touches the internet).

It honours Range requests; ``/cut/NAME`` drops the connection half-way through the first response for NAME, and
``/cut-always/NAME`` through every response (a download that never completes). ``delay_s`` slows every MiB sent
(a test can pause or cancel a download while it runs).
"""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class FileServer:
    """Serves the files of one folder; `/cut/NAME` drops the connection half-way through its first response."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.requests: list[tuple[str, str | None]] = []  # (path, Range header)
        self.cut_done: set[str] = set()
        self.delay_s = 0.0  # seconds of wait before each MiB sent
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args) -> None:  # keep test output clean
                pass

            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                server.requests.append((self.path, self.headers.get("Range")))
                always = self.path.startswith("/cut-always/")
                cut = always or self.path.startswith("/cut/")
                file = server.root / self.path.removeprefix("/cut-always/").removeprefix("/cut/").lstrip("/")
                if not file.is_file():
                    self.send_error(404, "Not Found")
                    return
                size = file.stat().st_size
                start = 0
                if self.headers.get("Range"):
                    start = int(self.headers["Range"].removeprefix("bytes=").split("-")[0])
                    if start >= size:
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{size}")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{size - 1}/{size}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(size - start))
                self.end_headers()
                stop = size
                if cut and (always or self.path not in server.cut_done):
                    server.cut_done.add(self.path)
                    stop = start + (size - start) // 2
                with file.open("rb") as handle:
                    handle.seek(start)
                    left = stop - start
                    try:
                        while left > 0:
                            time.sleep(server.delay_s)
                            chunk = handle.read(min(left, 1 << 20))
                            self.wfile.write(chunk)
                            left -= len(chunk)
                    except (BrokenPipeError, ConnectionResetError):
                        pass  # the client gave up on purpose (e.g. a refused size)
                # HTTP/1.0: returning closes the connection, so a cut response simply ends early.

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{path}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
