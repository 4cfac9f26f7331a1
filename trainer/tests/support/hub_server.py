#!/usr/bin/env python3
"""A stand-in for the Hugging Face Hub's file API, for `trainer/tests/hub_download.rs` (no network).

Serves one model repository from a local folder as the Hub answers `hf-hub` / `huggingface_hub`:

- `GET /api/models/{repo}/revision/{rev}`: `{"sha": COMMIT, "siblings": [{"rfilename": ...}]}`;
- `GET /{repo}/resolve/{rev}/{file}` with `Range: bytes=a-[b]`: 206 with the bytes, a
  `Content-Range: bytes a-b/size`, an `ETag` (the file's sha256) and `X-Repo-Commit`.

Anything else is 404. Usage: `hub_server.py REPO_ID FOLDER`; prints the port, serves until killed.
"""

import hashlib
import http.server
import json
import os
import re
import sys

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def main():
    repo, folder = sys.argv[1], sys.argv[2]
    files = sorted(os.listdir(folder))

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def send(self, status, body, headers=()):
            self.send_response(status)
            for key, value in headers:
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            if self.path.startswith(f"/api/models/{repo}/revision/"):
                info = {"sha": COMMIT, "siblings": [{"rfilename": f} for f in files]}
                return self.send(200, json.dumps(info).encode(), [("Content-Type", "application/json")])
            prefix = f"/{repo}/resolve/"
            name = self.path[len(prefix):].split("/", 1)[-1] if self.path.startswith(prefix) else None
            if name not in files:
                return self.send(404, b"not found")
            with open(os.path.join(folder, name), "rb") as f:
                data = f.read()
            match = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", "bytes=0-"))
            start = int(match.group(1))
            end = int(match.group(2)) if match.group(2) else len(data) - 1
            self.send(
                206,
                data[start : end + 1],
                [
                    ("Content-Range", f"bytes {start}-{end}/{len(data)}"),
                    ("ETag", '"' + hashlib.sha256(data).hexdigest() + '"'),
                    ("X-Repo-Commit", COMMIT),
                ],
            )

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
