"""A small STAC API for the tests: landing page, conformance, /search (bbox, intersects, datetime, collections),
the items and their images as static files, and a token endpoint like Planetary Computer's (files under
/private/ are served only to URLs signed with its token).

Run as a separate process: ``python stacserver.py FOLDER`` serves ``FOLDER/items/*.json`` (and whatever lies
beside them) and prints its port on the first line of standard output.
"""

from __future__ import annotations

import datetime
import functools
import http.server
import json
import sys
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import shapely.geometry
from rangeserver import RangeHandler  # the images are read by range requests, as from object stores

CONFORMS = ["https://api.stacspec.org/v1.0.0/core", "https://api.stacspec.org/v1.0.0/item-search"]


def _time(text: str | None, end: bool) -> datetime.datetime | None:
    if text in (None, "", ".."):
        return None
    t = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return t if t.tzinfo else t.replace(tzinfo=datetime.timezone.utc)


class Handler(RangeHandler):
    def _json(self, doc: dict, status: int = 200) -> None:
        body = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _base(self) -> str:
        return f"http://{self.headers['Host']}"

    def do_GET(self):  # noqa: N802
        url = urlparse(self.path)
        if url.path in ("", "/"):
            base = self._base()
            return self._json({"type": "Catalog", "stac_version": "1.0.0", "id": "test-api", "description": "tests",
                               "conformsTo": CONFORMS, "links": [
                                   {"rel": "self", "href": base + "/", "type": "application/json"},
                                   {"rel": "root", "href": base + "/", "type": "application/json"},
                                   {"rel": "conformance", "href": base + "/conformance"},
                                   {"rel": "search", "href": base + "/search", "method": "POST",
                                    "type": "application/geo+json"},
                                   {"rel": "search", "href": base + "/search", "method": "GET",
                                    "type": "application/geo+json"}]})
        if url.path == "/conformance":
            return self._json({"conformsTo": CONFORMS})
        if url.path.startswith("/api/sas/v1/token/"):  # Planetary Computer's token endpoint, for one collection
            expiry = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)
            return self._json({"token": f"st=now&se=later&sig=test-{url.path.rsplit('/', 1)[1]}",
                               "msft:expiry": expiry.isoformat().replace("+00:00", "Z")})
        if url.path.startswith("/private/") and "sig=test-" not in url.query:  # signed URLs only, as a blob store
            return self.send_error(403, "Server failed to authenticate the request")
        if url.path == "/search":
            q = {k: v[0] for k, v in parse_qs(url.query).items()}
            params = {"bbox": [float(x) for x in q["bbox"].split(",")] if "bbox" in q else None,
                      "intersects": json.loads(q["intersects"]) if "intersects" in q else None,
                      "datetime": q.get("datetime"), "collections": q["collections"].split(",") if "collections" in q else None}
            return self._search(params)
        return super().do_GET()

    def do_POST(self):  # noqa: N802
        if urlparse(self.path).path != "/search":
            return self.send_error(404)
        params = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        return self._search(params)

    def _search(self, params: dict) -> None:
        area = None
        if params.get("intersects"):
            area = shapely.geometry.shape(params["intersects"])
        elif params.get("bbox"):
            area = shapely.box(*params["bbox"])
        start = end = None
        if params.get("datetime"):
            lo, _, hi = str(params["datetime"]).partition("/")
            start, end = _time(lo, False), _time(hi or lo, True)
        wanted = params.get("collections")
        out = []
        for path in sorted((Path(self.directory) / "items").glob("*.json")):
            item = json.loads(path.read_text())
            when = _time(item["properties"].get("datetime"), False)
            if area is not None and not shapely.geometry.shape(item["geometry"]).intersects(area):
                continue
            if start is not None and (when is None or when < start) or end is not None and (when is None or when > end):
                continue
            if wanted and item.get("collection") not in wanted:
                continue
            item["links"] = [{"rel": "self", "href": f"{self._base()}/items/{path.name}", "type": "application/geo+json"}]
            out.append(item)
        self._json({"type": "FeatureCollection", "features": out, "links": []})

    def log_message(self, *args):  # quiet
        pass


if __name__ == "__main__":
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=sys.argv[1]))
    print(server.server_address[1], flush=True)
    server.serve_forever()
