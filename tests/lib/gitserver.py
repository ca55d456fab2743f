"""A smart-HTTP Git server for the container tier, and a fleet work tree that commits to it.

    srv = GitHttpServer(root, netns=c.netns, log=tmp / "http.log")   # netns=None: the host's 127.0.0.1
    srv.start()                     # "PORT n" read back; srv.url("fleet.git")
    srv.stop(); srv.start()         # down, then up again on the same port
    srv.stop()                      # idempotent; always call it (a finally / fixture finalizer)

The server is agent/src/git/testdata/cgi_server.py (``git http-backend`` behind a tiny CGI
bridge), run on the host with ``ip netns exec <netns>``: it listens on 127.0.0.1 *of that network
namespace*, which is the container's (tests/lib/container.py puts each container in a namespace
of its own that has only ``lo``). So the agent inside reaches ``http://127.0.0.1:PORT/git/...``
while the repositories stay plain directories on the host, and nothing listens on, or leaves
through, the host's own network. The server runs in a new session (its own process group, whose
id is its PID): ``stop()`` signals that group, so a ``git http-backend`` in the middle of a
request goes with it, and waits for the PID.

``Fleet`` is the administrator's side: a work tree on the host whose commits (SSH-signed with
``git -c gpg.format=ssh -c user.signingkey=KEY commit -S``, or not) are pushed straight into the
bare repository the server serves.
"""
from __future__ import annotations

import os
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CGI_SERVER = REPO / "agent" / "src" / "git" / "testdata" / "cgi_server.py"


class GitHttpServer:
    def __init__(self, root: Path, *, netns: str | None, log: Path, port: int = 0):
        self.root = Path(root)
        self.netns = netns
        self.log = Path(log)
        self.port = port            # 0: a free one on the first start, kept for the next ones
        self.proc: subprocess.Popen | None = None

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/git/{name}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout: float = 15):
        if self.running:
            raise RuntimeError("git server already running")
        argv = [sys.executable, str(CGI_SERVER), str(self.root), str(self.log), "--port", str(self.port)]
        if self.netns is not None:
            argv = ["ip", "netns", "exec", self.netns, *argv]
        # `ip netns exec` execs the command: the PID is the server's.
        with open(self.log.with_suffix(".stderr"), "ab") as err:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err,
                                         start_new_session=True)
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout
        line = b""
        try:
            while not line.endswith(b"\n"):
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    err = self.log.with_suffix(".stderr").read_text(errors="replace")[-2000:]
                    raise RuntimeError(f"git server did not start (rc={self.proc.poll()}): {err}")
                if sel.select(timeout=min(left, 0.5)):
                    chunk = os.read(self.proc.stdout.fileno(), 100)
                    if not chunk:
                        continue
                    line += chunk
        except BaseException:
            self.stop()
            raise
        finally:
            sel.close()
        port = int(line.split()[1])
        if self.port and port != self.port:
            self.stop()
            raise RuntimeError(f"git server listens on {port}, not {self.port}")
        self.port = port

    def stop(self):
        """SIGTERM to the server's process group (its PID), SIGKILL after 5 s. Idempotent."""
        p, self.proc = self.proc, None
        if p is None:
            return
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(timeout=10)
        # anything left in its group (a request's `git http-backend`)
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        if p.stdout:
            p.stdout.close()

    def log_tail(self, n: int = 30) -> str:
        try:
            lines = self.log.read_text(errors="replace").splitlines()
        except OSError:
            return "(no server log)"
        return "\n".join(lines[-n:])

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()
        return False


def git(*args, cwd: Path | None = None, check: bool = True) -> str:
    """git with the machine's config ignored and a fixed identity; returns stdout."""
    env = dict(os.environ, GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL="/dev/null",
               GIT_AUTHOR_NAME="Ops", GIT_AUTHOR_EMAIL="ops@example.org",
               GIT_COMMITTER_NAME="Ops", GIT_COMMITTER_EMAIL="ops@example.org")
    p = subprocess.run(["git", "-c", "init.defaultBranch=main", *args], cwd=cwd, env=env, capture_output=True,
                       text=True, stdin=subprocess.DEVNULL)
    if check and p.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed (rc={p.returncode}): {p.stderr}")
    return p.stdout


def ssh_keygen(path: Path, comment: str) -> str:
    """An ed25519 key pair at PATH (no passphrase); returns the public key line."""
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)], check=True,
                   capture_output=True, stdin=subprocess.DEVNULL)
    return Path(f"{path}.pub").read_text().strip()


class Fleet:
    """The administrator's work tree for BRANCH, pushing into the bare repository BARE."""

    def __init__(self, work: Path, bare: Path, branch: str, signing_key: Path | None = None):
        self.work, self.bare, self.branch, self.key = Path(work), Path(bare), branch, signing_key
        self.work.mkdir(parents=True, exist_ok=True)
        git("init", "-q", "-b", branch, cwd=self.work)

    def write(self, files: dict[str, str]):
        for rel, content in files.items():
            p = self.work / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(content)

    def commit(self, message: str, files: dict[str, str] | None = None, *, signed: bool = True) -> str:
        """Write FILES, commit all (SSH-signed with the fleet key unless signed=False), push the
        branch (forced) into the bare repository; returns the commit id."""
        self.write(files or {})
        git("add", "-A", cwd=self.work)
        sign = ["-c", "gpg.format=ssh", "-c", f"user.signingkey={self.key}"] if signed else []
        git(*sign, "commit", "-q", *(["-S"] if signed else ["--no-gpg-sign"]), "-m", message, cwd=self.work)
        sha = git("rev-parse", "HEAD", cwd=self.work).strip()
        git("push", "-q", "-f", str(self.bare), f"HEAD:refs/heads/{self.branch}", cwd=self.work)
        return sha
