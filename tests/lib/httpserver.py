"""A small HTTP server on 127.0.0.1 for the tests of get_url, uri and unarchive.

    python3 httpserver.py DIRECTORY [REQUEST_LOG]

Prints `PORT <n>` on its first stdout line once it listens (on a free port). Serves DIRECTORY as
`python3 -m http.server` does (GET/HEAD, If-Modified-Since answered with 304), plus:
  POST|PUT|PATCH|DELETE|GET /echo   200, JSON {"method", "body", "content_type", "authorization"}
  GET /status/<code>                that status, body "status <code>"
  GET /redirect/<path>              302 to /<path>
  GET /auth/<path>                  401 with a Basic challenge unless the Authorization header is
                                    "Basic dXNlcjpwYXNz" (user:pass), then the file <path>
  GET /disposition/<path>           the file <path> with Content-Disposition: attachment; filename=named-<basename>
Every request is appended to REQUEST_LOG as one line "METHOD PATH" (for counting requests).
Started and stopped by harness.http_server (by PID).
"""
import functools
import http.server
import json
import os
import sys


class Handler(http.server.SimpleHTTPRequestHandler):
    log_path = None

    def log_message(self, fmt, *args):  # quiet; requests go to the log file
        pass

    def _record(self):
        if self.log_path:
            with open(self.log_path, "a") as f:
                f.write(f"{self.command} {self.path}\n")

    def _send(self, code, body=b"", headers=()):
        self.send_response(code)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _echo(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n).decode("utf-8", "replace")
        doc = {"method": self.command, "body": body,
               "content_type": self.headers.get("Content-Type"),
               "authorization": self.headers.get("Authorization")}
        self._send(200, json.dumps(doc, sort_keys=True).encode(), [("Content-Type", "application/json")])

    def _special(self):
        p = self.path
        if p.startswith("/echo"):
            self._echo()
            return True
        if p.startswith("/status/"):
            code = int(p.split("/")[2])
            self._send(code, f"status {code}".encode(), [("Content-Type", "text/plain")])
            return True
        if p.startswith("/redirect/"):
            self._send(302, b"", [("Location", "/" + p[len("/redirect/"):])])
            return True
        if p.startswith("/auth/"):
            if self.headers.get("Authorization") != "Basic dXNlcjpwYXNz":
                self._send(401, b"auth", [("WWW-Authenticate", 'Basic realm="test"')])
                return True
            self.path = "/" + p[len("/auth/"):]
            return False
        if p.startswith("/disposition/"):
            rel = p[len("/disposition/"):]
            with open(os.path.join(self.directory, rel), "rb") as f:
                data = f.read()
            self._send(200, data, [("Content-Disposition",
                                    f'attachment; filename="named-{os.path.basename(rel)}"')])
            return True
        return False

    def do_GET(self):
        self._record()
        if not self._special():
            super().do_GET()

    def do_HEAD(self):
        self._record()
        if not self._special():
            super().do_HEAD()

    def do_POST(self):
        self._record()
        self._echo()

    do_PUT = do_POST
    do_PATCH = do_POST
    do_DELETE = do_POST


def main():
    directory = sys.argv[1]
    Handler.log_path = sys.argv[2] if len(sys.argv) > 2 else None
    handler = functools.partial(Handler, directory=directory)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    print(f"PORT {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
