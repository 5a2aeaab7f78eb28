"""A static file server that honours HTTP ``Range`` requests, as object stores and CDNs do.

Run as a separate process by the tests (GDAL holds the GIL while it reads a URL, so a
server thread in the test process would never answer): ``python rangeserver.py FOLDER
[--no-ranges]`` prints its port on the first line of standard output.
"""

from __future__ import annotations

import functools
import http.server
import io
import os
import sys


class RangeHandler(http.server.SimpleHTTPRequestHandler):
    ranges = True

    def send_head(self):
        wanted = self.headers.get("Range")
        if not wanted or not self.ranges:
            return super().send_head()
        path = self.translate_path(self.path)
        if not os.path.isfile(path):
            self.send_error(404)
            return None
        with open(path, "rb") as fh:
            data = fh.read()
        start_text, _, end_text = wanted.removeprefix("bytes=").partition("-")
        start = int(start_text)
        end = min(int(end_text) if end_text else len(data) - 1, len(data) - 1)
        body = data[start:end + 1]
        self.send_response(206)
        self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        return io.BytesIO(body)

    def log_message(self, *args):  # quiet
        pass


if __name__ == "__main__":
    RangeHandler.ranges = "--no-ranges" not in sys.argv
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(RangeHandler, directory=sys.argv[1]))
    print(server.server_address[1], flush=True)
    server.serve_forever()
