#!/usr/bin/env python3
"""Smart HTTP for tests: `git http-backend` behind a tiny CGI bridge on 127.0.0.1.

usage: cgi_server.py PROJECT_ROOT LOG_FILE [--port N] [--auth USER:PASSWORD]
                     [--tls-cert CERT.pem --tls-key KEY.pem]
Serves http://127.0.0.1:PORT/git/<repo>; prints "PORT <n>" on stdout once listening. `--port`
listens on that port (to bring a stopped server back on the same URL), default a free one.
`--auth` requires HTTP Basic auth with that account on every request (401 otherwise).
`--tls-cert`/`--tls-key` serve https:// instead of http://.
Each request is logged to LOG_FILE as one line: method, path, Git-Protocol header, and the
`ref-prefix` lines of the request body (to check what a client asked for).
Handles chunked request bodies (CGI needs a CONTENT_LENGTH).
"""
import base64
import http.server
import subprocess
import sys
import os
import ssl

ROOT, LOG = sys.argv[1], sys.argv[2]
PORT, AUTH, CERT, KEY = 0, None, None, None
_rest = sys.argv[3:]
while _rest:
    flag, value, _rest = _rest[0], _rest[1], _rest[2:]
    if flag == "--port":
        PORT = int(value)
    elif flag == "--auth":
        AUTH = "Basic " + base64.b64encode(value.encode()).decode()
    elif flag == "--tls-cert":
        CERT = value
    elif flag == "--tls-key":
        KEY = value
    else:
        sys.exit(f"cgi_server.py: unknown option {flag}")


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return out
                out += self.rfile.read(size)
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def handle_any(self):
        path, _, query = self.path.partition("?")
        if not path.startswith("/git/"):
            self.send_error(404)
            return
        data = self.body()
        if AUTH is not None and self.headers.get("Authorization") != AUTH:
            with open(LOG, "a") as log:
                log.write(f"{self.command} {self.path} 401 (authorization: {'wrong' if self.headers.get('Authorization') else 'none'})\n")
            body = b"authentication required\n"
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="git"')
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "GIT_PROJECT_ROOT": ROOT,
            "GIT_HTTP_EXPORT_ALL": "1",
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": "/dev/null",
            "REMOTE_USER": "agent",
            "REMOTE_ADDR": "127.0.0.1",
            "GATEWAY_INTERFACE": "CGI/1.1",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "REQUEST_METHOD": self.command,
            "PATH_INFO": path[len("/git"):],
            "QUERY_STRING": query,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(data)),
        }
        if self.headers.get("Content-Encoding"):
            env["HTTP_CONTENT_ENCODING"] = self.headers["Content-Encoding"]
        if self.headers.get("Git-Protocol"):
            env["GIT_PROTOCOL"] = self.headers["Git-Protocol"]
        prefixes = [l.decode() for l in data.split(b"\n") if b"ref-prefix " in l]
        with open(LOG, "a") as log:
            log.write(f"{self.command} {self.path} proto={self.headers.get('Git-Protocol')} {prefixes}\n")
        result = subprocess.run(["git", "http-backend"], input=data, env=env, capture_output=True)
        head, _, payload = result.stdout.partition(b"\r\n\r\n")
        if not _:
            head, _, payload = result.stdout.partition(b"\n\n")
        status, headers = 200, []
        for line in head.decode("latin-1").splitlines():
            name, _, value = line.partition(":")
            if name.lower() == "status":
                status = int(value.strip().split()[0])
            elif name:
                headers.append((name, value.strip()))
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = handle_any
    do_POST = handle_any


http.server.ThreadingHTTPServer.allow_reuse_address = True
server = http.server.ThreadingHTTPServer(("127.0.0.1", PORT), Handler)
if CERT:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(CERT, KEY)
    # The handshake runs in the request thread, not in accept(): a client that fails it does
    # not block the server.
    server.socket = context.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
print(f"PORT {server.server_address[1]}", flush=True)
server.serve_forever()
