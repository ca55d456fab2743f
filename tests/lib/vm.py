"""The VM tier: the container tier's bookworm tree booted as a real machine under qemu.

    from vm import build_image, Vm
    img = build_image(container.build_rootfs())    # cached; ext4 image + kernel + saved state
    with Vm(img, payload=dir_on_host, git_port=8080) as m:   # restored from the saved state (~5-10 s)
        m.run("systemctl is-system-running")       # -> subprocess.CompletedProcess (through the guest agent)
        m.reboot()                                 # a real reboot (cold boot of the guest kernel)

What only a machine shows (boot, reboot, a unit enabled at boot, the watchdog of a real PID 1 that
booted from a kernel) runs here; the bulk of the scenarios runs in nspawn containers.

Image: the unpacked tree of ``container.build_rootfs()`` (which carries linux-image-cloud-amd64,
qemu-guest-agent and udev for this tier) copied, given a static address for qemu's user network
(10.0.2.15/24, systemd-networkd) and written into an ext4 image with ``mkfs.ext4 -d`` (no loop
mount). The kernel and initrd are taken from the tree's /boot; direct ``-kernel/-initrd`` boot,
``root=LABEL=root``.

Warm start: KVM is not usable on these machines (it does not boot stock kernels), so the guest runs
under TCG, where a cold boot takes 40-75 s. The image is booted once, its RAM and disk saved (QMP ``migrate`` to a
zstd file, the disk as a qcow2 layer), and each Vm restores that state in ~5-10 s, then gets its
clock set from the host. Restore needs the same memory, CPUs, disks and devices as at save time:
they are fixed below and part of the cache key, as are the image and qemu's version.

Devices: root disk (a per-VM qcow2 overlay over the saved disk), a second disk "payload" (an ext4
image made with ``mkfs.ext4 -d`` from a host directory, empty at save time; the guest mounts
/dev/disk/by-id/virtio-payload), qemu-guest-agent on a virtio-serial port behind a host unix
socket (every command reaches the guest through it: no network daemon in the guest), the serial
console into a log file, QMP on a unix socket.

Network: user mode with ``restrict=on`` (the guest can reach nothing, not the host, not the
Internet), except ``guestfwd`` 10.0.2.100:80, which runs ``socat - TCP:127.0.0.1:<port>`` on the
host per connection, the port read from a file at connect time (so the saved state's network
setup is the same for every test). A Git server the test runs on the host's 127.0.0.1:<port> is
http://10.0.2.100/ in the guest.

Safety: systemd boots only inside the VM. One VM at a time (a lock): two TCG VMs on 2 cores
starve each other. qemu is stopped by PID in every case.
"""
from __future__ import annotations

import base64
import fcntl
import hashlib
import inspect
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import container as ct  # noqa: E402
from pkgrepo import cache_dir, file_lock  # noqa: E402

QEMU = "qemu-system-x86_64"
# Fixed machine layout: the saved state restores only into the same one.
MEM_MB = 1024
SMP = 2
CPU = "qemu64"
GUEST_ADDR = "10.0.2.15/24"
FWD_ADDR = "10.0.2.100"     # http://10.0.2.100/ -> host 127.0.0.1:<port file>
IMAGE_SIZE = "3G"
PAYLOAD_SIZE = "512M"
PAYLOAD_MOUNT = "/mnt/payload"


def timing(line: str):
    ct.timing(line)


# --------------------------------------------------------------------------
# image and saved state
# --------------------------------------------------------------------------
def _configure_vm_root(root: Path):
    """VM-only changes to a copy of the container tree (part of the cache key)."""
    net = root / "etc/systemd/network/10-gatest-vm.network"
    net.parent.mkdir(parents=True, exist_ok=True)
    # static: qemu's user network is always 10.0.2.0/24; no DHCP wait at boot
    net.write_text(f"[Match]\nName=en* eth*\n[Network]\nAddress={GUEST_ADDR}\nGateway=10.0.2.2\n"
                   "LinkLocalAddressing=no\nIPv6AcceptRA=no\n")
    subprocess.run(["systemctl", f"--root={root}", "enable", "systemd-networkd.service"],
                   check=True, capture_output=True)
    (root / "etc/fstab").write_text("# root is mounted rw by the kernel command line\n")
    # the container tree masks console-getty (nspawn's console); the VM's is the serial one
    ser = root / "etc/systemd/system/serial-getty@ttyS0.service"
    if ser.is_symlink():
        ser.unlink()


def _qemu_version() -> str:
    return subprocess.run([QEMU, "--version"], capture_output=True, text=True, check=True).stdout.splitlines()[0]


def _fwd_script_text(port_file: Path) -> str:
    return ("#!/bin/sh\n# qemu guestfwd: one run per guest connection to "
            f"{FWD_ADDR}:80 (tests/lib/vm.py)\n"
            f"exec socat - TCP:127.0.0.1:\"$(cat {port_file})\"\n")


@dataclass
class VmImage:
    dir: Path
    key: str

    kernel = property(lambda s: s.dir / "vmlinuz")
    initrd = property(lambda s: s.dir / "initrd.img")
    disk = property(lambda s: s.dir / "root.ext4")
    snap_disk = property(lambda s: s.dir / "snap-disk.qcow2")
    vmstate = property(lambda s: s.dir / "vmstate.zst")
    fwd_script = property(lambda s: s.dir / "guestfwd.sh")
    port_file = property(lambda s: s.dir / "guestfwd.port")
    build_lock = property(lambda s: s.dir.parent / ".vm-build.lock")
    run_lock = property(lambda s: s.dir.parent / ".vm-run.lock")   # one VM at a time


def image_key(tree: Path) -> str:
    recipe = {
        "rootfs": tree.name, "configure": inspect.getsource(_configure_vm_root),
        "qemu": _qemu_version(), "mem": MEM_MB, "smp": SMP, "cpu": CPU, "size": IMAGE_SIZE,
        "payload": PAYLOAD_SIZE, "argv": inspect.getsource(Vm._argv), "format": 1,
    }
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]


def build_image(tree: Path) -> VmImage:
    """The VM image for TREE, with its saved running state: built once per recipe, then cached."""
    for tool, pkg in ((QEMU, "qemu-system-x86"), ("qemu-img", "qemu-utils"), ("mkfs.ext4", "e2fsprogs"),
                      ("zstd", "zstd"), ("socat", "socat")):
        if not shutil.which(tool):
            raise FileNotFoundError(f"{tool} not found (apt-get install {pkg})")
    key = image_key(tree)
    img = VmImage(cache_dir() / f"vm-{key}", key)
    if img.vmstate.exists():
        return img
    img.dir.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(img.build_lock):
        if img.vmstate.exists():
            return img
        img.dir.mkdir(exist_ok=True)
        img.fwd_script.write_text(_fwd_script_text(img.port_file))
        img.fwd_script.chmod(0o755)
        if not img.disk.exists():
            _make_disk(tree, img)
        _save_state(img)
        _prune(img)
    return img


def _make_disk(tree: Path, img: VmImage):
    t0 = time.monotonic()
    boot = tree / "boot"
    kernels = sorted(boot.glob("vmlinuz-*"))
    initrds = sorted(boot.glob("initrd.img-*"))
    if not kernels or not initrds:
        raise RuntimeError(f"{tree} has no kernel/initrd in /boot: the rootfs recipe must include "
                           "linux-image-cloud-amd64 (container.ROOTFS_PACKAGES)")
    shutil.copy(kernels[-1], img.kernel)
    shutil.copy(initrds[-1], img.initrd)
    work = Path(tempfile.mkdtemp(prefix=".vmroot.", dir=img.dir))
    try:
        root = work / "root"
        subprocess.run(["cp", "-a", "--reflink=auto", str(tree), str(root)], check=True)
        _configure_vm_root(root)
        part = img.disk.with_suffix(".part")
        part.unlink(missing_ok=True)
        subprocess.run(["mkfs.ext4", "-q", "-L", "root", "-d", str(root), str(part), IMAGE_SIZE],
                       check=True, capture_output=True)
        part.rename(img.disk)
    finally:
        ct.safe_rmtree(work)
    timing(f"vm image (copy + mkfs.ext4 -d) {time.monotonic() - t0:.1f}s")


def _save_state(img: VmImage):
    """Cold-boot the image once, wait for the system to be up, save RAM + disk."""
    t0 = time.monotonic()
    m = Vm(img, restore=False)
    try:
        m.start()
        t_boot = time.monotonic() - t0
        # nothing cached from the (empty) payload disk; no dirty pages in the saved RAM
        m.run("sync; echo 3 > /proc/sys/vm/drop_caches")
        m.qga_close()
        m.qmp("stop")
        tmp = img.vmstate.with_suffix(".part")
        tmp.unlink(missing_ok=True)
        m.qmp("migrate", uri=f"exec:zstd -1 -q -f -o {tmp}")
        deadline = time.monotonic() + 300
        while True:
            st = m.qmp("query-migrate").get("status")
            if st == "completed":
                break
            if st in ("failed", "cancelled") or time.monotonic() > deadline:
                raise RuntimeError(f"saving the VM state: migration {st}")
            time.sleep(0.2)
        m.qmp("quit")
        m.wait_exit(30)
        shutil.move(m.overlay, img.snap_disk)   # the work dir may be on another file system
        os.replace(tmp, img.vmstate)
    finally:
        m.stop()
    timing(f"vm cold boot + saved state {time.monotonic() - t0:.1f}s (boot {t_boot:.1f}s, "
           f"state {img.vmstate.stat().st_size / 1e6:.0f} MB)")


def _prune(keep: VmImage):
    for p in keep.dir.parent.glob("vm-*"):
        if p.is_dir() and p != keep.dir:
            shutil.rmtree(p, ignore_errors=True)


# --------------------------------------------------------------------------
# guest agent and QMP clients
# --------------------------------------------------------------------------
class _JsonSocket:
    def __init__(self, path: Path, timeout: float):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.settimeout(timeout)
        try:
            self.s.connect(str(path))
        except OSError:
            self.s.close()
            raise
        self.buf = b""

    def read(self) -> dict:
        while True:
            while b"\n" not in self.buf:
                chunk = self.s.recv(65536)
                if not chunk:
                    raise ConnectionError("socket closed")
                self.buf += chunk
            line, self.buf = self.buf.split(b"\n", 1)
            line = line.lstrip(b"\xff").strip()
            if line:
                return json.loads(line)

    def close(self):
        self.s.close()


class QmpError(RuntimeError):
    pass


class GuestError(RuntimeError):
    pass


class CommandError(subprocess.CalledProcessError):
    def __str__(self):
        return (f"guest command {self.cmd!r} exited {self.returncode}\n--- stdout ---\n{self.stdout}"
                f"\n--- stderr ---\n{self.stderr}")


# --------------------------------------------------------------------------
# the VM
# --------------------------------------------------------------------------
class Vm:
    """One qemu process (restored from the image's saved state unless restore=False).

    payload:  host directory that becomes the guest's /mnt/payload (read-only ext4 copy)
    git_port: host 127.0.0.1 port that http://10.0.2.100/ reaches from the guest
    """

    def __init__(self, img: VmImage, *, restore: bool = True, payload: Path | None = None,
                 git_port: int | None = None):
        self.img = img
        self.restore = restore
        self.payload = payload
        self.git_port = git_port
        self.workdir = Path(tempfile.mkdtemp(prefix="gatest-vm.", dir=os.environ.get("TMPDIR", "/tmp")))
        self.overlay = self.workdir / "disk.qcow2"
        self.payload_img = self.workdir / "payload.ext4"
        self.console_log = self.workdir / "console.log"
        self.proc: subprocess.Popen | None = None
        self._qga: _JsonSocket | None = None
        self._qmp: _JsonSocket | None = None
        self._lock = None

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()
        return False

    # -- lifecycle ------------------------------------------------------
    def _argv(self) -> list[str]:
        img, w = self.img, self.workdir
        netdev = (f"user,id=n0,restrict=on,net=10.0.2.0/24,"
                  f"guestfwd=tcp:{FWD_ADDR}:80-cmd:{img.fwd_script}")
        return [QEMU, "-machine", "q35", "-accel", "tcg,thread=multi,tb-size=512", "-cpu", CPU,
                "-smp", str(SMP), "-m", str(MEM_MB), "-nodefaults", "-display", "none",
                "-kernel", str(img.kernel), "-initrd", str(img.initrd),
                "-append", "root=LABEL=root rw console=ttyS0 quiet loglevel=3 mitigations=off "
                           "systemd.show_status=auto",
                "-drive", f"file={self.overlay},if=none,id=root,format=qcow2,discard=unmap",
                "-device", "virtio-blk-pci,drive=root,serial=root",
                "-drive", f"file={self.payload_img},if=none,id=pl,format=raw,readonly=on",
                "-device", "virtio-blk-pci,drive=pl,serial=payload",
                "-netdev", netdev, "-device", "virtio-net-pci,netdev=n0",
                "-device", "virtio-serial-pci",
                "-chardev", f"socket,id=qga0,path={w}/qga.sock,server=on,wait=off",
                "-device", "virtserialport,chardev=qga0,name=org.qemu.guest_agent.0",
                "-device", "virtio-rng-pci",
                "-chardev", f"file,id=ser0,path={self.console_log}", "-serial", "chardev:ser0",
                "-qmp", f"unix:{w}/qmp.sock,server=on,wait=off"]

    def start(self):
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self):
        self._lock = open(self.img.run_lock, "a+")
        fcntl.flock(self._lock, fcntl.LOCK_EX)   # one TCG VM at a time
        t0 = time.monotonic()
        if self.restore:
            backing = ["-F", "qcow2", "-b", str(self.img.snap_disk)]
        else:
            backing = ["-F", "raw", "-b", str(self.img.disk)]
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", *backing, str(self.overlay)],
                       check=True, capture_output=True)
        mk = ["mkfs.ext4", "-q", "-L", "payload", "-E", "root_owner=0:0"]
        if self.payload is not None:
            mk += ["-d", str(self.payload)]
        subprocess.run(mk + [str(self.payload_img), PAYLOAD_SIZE], check=True, capture_output=True)
        if self.git_port is not None:
            self.img.port_file.write_text(f"{self.git_port}\n")
        argv = self._argv()
        if self.restore:
            argv += ["-incoming", f"exec:zstd -dcq {self.img.vmstate}"]
        with open(self.workdir / "qemu.log", "wb") as log:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        self._qmp_connect(time.monotonic() + 30)
        if self.restore:
            # the state was saved paused: wait for the load to finish, then run
            deadline = time.monotonic() + 300
            while self.qmp("query-status")["status"] == "inmigrate":
                self._check_alive()
                if time.monotonic() > deadline:
                    raise GuestError(f"restoring the VM state took over 300 s\n{self.tail()}")
                time.sleep(0.1)
            self.qmp("cont")
        self.qga_connect(time.monotonic() + (60 if self.restore else 300))
        t_agent = time.monotonic() - t0
        if self.restore:
            self.set_clock()
        state = self.run(["systemctl", "is-system-running", "--wait"], check=False, timeout=300).stdout.strip()
        if state not in ("running", "degraded"):
            raise GuestError(f"is-system-running={state!r}\n{self.tail()}")
        timing(f"vm {'restore' if self.restore else 'cold boot'}: guest agent {t_agent:.1f}s, "
               f"{state} {time.monotonic() - t0:.1f}s")
        if self.payload is not None:
            self.run(f"mkdir -p {PAYLOAD_MOUNT} && mount -o ro /dev/disk/by-id/virtio-payload {PAYLOAD_MOUNT}")

    def _check_alive(self):
        if self.proc is None or self.proc.poll() is not None:
            raise GuestError(f"qemu exited (rc={self.proc and self.proc.returncode})\n{self.tail()}")

    def tail(self, n: int = 40) -> str:
        out = []
        for f in ("qemu.log", "console.log"):
            p = self.workdir / f
            if p.exists():
                lines = p.read_text(errors="replace").splitlines()[-n:]
                out.append(f"--- {f} ---\n" + "\n".join(lines))
        return "\n".join(out)

    def wait_exit(self, timeout: float) -> bool:
        try:
            self.proc.wait(timeout)
            return True
        except subprocess.TimeoutExpired:
            return False

    def stop(self):
        """Power off (qemu quit); SIGKILL by PID if it does not go; remove the work dir."""
        self.qga_close()
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.qmp("quit")
            except (OSError, ConnectionError, QmpError, ValueError):
                pass
            if not self.wait_exit(10):
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        if self._qmp is not None:
            self._qmp.close()
            self._qmp = None
        if self._lock is not None:
            self._lock.close()
            self._lock = None
        if os.environ.get("GATEST_KEEP_VM_DIR"):
            print(f"vm work dir kept: {self.workdir}", file=sys.stderr)
        else:
            shutil.rmtree(self.workdir, ignore_errors=True)

    # -- QMP --------------------------------------------------------------
    def _qmp_connect(self, deadline: float):
        while True:
            self._check_alive()
            try:
                self._qmp = _JsonSocket(self.workdir / "qmp.sock", timeout=10)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        self._qmp.read()                         # greeting
        self.qmp("qmp_capabilities")

    def qmp(self, cmd: str, **args) -> dict:
        msg = {"execute": cmd, **({"arguments": args} if args else {})}
        self._qmp.s.sendall(json.dumps(msg).encode() + b"\n")
        while True:
            m = self._qmp.read()
            if "event" in m:
                continue
            if "error" in m:
                raise QmpError(f"{cmd}: {m['error']}")
            return m.get("return", {})

    # -- guest agent --------------------------------------------------------
    def qga_connect(self, deadline: float):
        """Connect to qemu-guest-agent and sync (it answers once the guest runs it)."""
        last = None
        self.qga_close()
        while time.monotonic() < deadline:
            self._check_alive()
            q = None
            try:
                q = _JsonSocket(self.workdir / "qga.sock", timeout=2)
                ident = int(time.time() * 1000) % 2**31
                # 0xFF resets the agent's parser after a partial message of an earlier client
                q.s.sendall(b"\xff" + json.dumps({"execute": "guest-sync-delimited",
                                                  "arguments": {"id": ident}}).encode())
                while q.read().get("return") != ident:
                    pass
                q.s.settimeout(600)
                self._qga = q
                return
            except (OSError, ConnectionError, ValueError) as e:
                last = repr(e)
                if q is not None:
                    q.close()            # qemu's chardev serves one client: never leak it
                time.sleep(0.3)
        raise GuestError(f"guest agent not answering: {last}\n{self.tail()}")

    def qga_close(self):
        if self._qga is not None:
            self._qga.close()
            self._qga = None

    def qga(self, cmd: str, **args):
        if self._qga is None:
            self.qga_connect(time.monotonic() + 60)
        msg = {"execute": cmd, **({"arguments": args} if args else {})}
        self._qga.s.sendall(json.dumps(msg).encode())
        m = self._qga.read()
        if "error" in m:
            raise GuestError(f"{cmd}: {m['error']}")
        return m.get("return")

    def set_clock(self):
        """The restored guest's clock stands at save time: set it from the host."""
        self.qga("guest-set-time", time=time.time_ns())

    def run(self, cmd: str | list, check: bool = True, *, input: str | bytes | None = None,
            timeout: float = 300) -> subprocess.CompletedProcess:
        """Run CMD in the guest (a list: argv; a string: /bin/sh -c) as root; text output."""
        argv = ["/bin/sh", "-c", cmd] if isinstance(cmd, str) else [str(a) for a in cmd]
        args = {"path": argv[0], "arg": argv[1:], "capture-output": True,
                "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8",
                        "HOME=/root"]}
        if input is not None:
            data = input.encode() if isinstance(input, str) else input
            args["input-data"] = base64.b64encode(data).decode()
        pid = self.qga("guest-exec", **args)["pid"]
        end = time.monotonic() + timeout
        delay = 0.01
        while True:
            st = self.qga("guest-exec-status", pid=pid)
            if st["exited"]:
                break
            if time.monotonic() > end:
                raise subprocess.TimeoutExpired(argv, timeout)
            time.sleep(delay)
            delay = min(delay * 2, 0.2)
        out = base64.b64decode(st.get("out-data", "")).decode(errors="replace")
        err = base64.b64decode(st.get("err-data", "")).decode(errors="replace")
        rc = st.get("exitcode", 128 + st.get("signal", 0))
        p = subprocess.CompletedProcess(argv, rc, out, err)
        if check and rc != 0:
            raise CommandError(rc, cmd, out, err)
        return p

    def read_file(self, path: str) -> str:
        return self.run(["cat", path]).stdout

    def write_file(self, path: str, content: str, mode: int = 0o644):
        self.run(["sh", "-c", f'mkdir -p "$(dirname "$1")" && cat > "$1" && chmod {mode:o} "$1"', "sh", path],
                 input=content)

    def exists(self, path: str) -> bool:
        return self.run(["test", "-e", path], check=False).returncode == 0

    def boot_id(self) -> str:
        return self.read_file("/proc/sys/kernel/random/boot_id").strip()

    def reboot(self, timeout: float = 300) -> float:
        """`systemctl reboot` in the guest and wait until it is up again (a new boot id, the system
        running). Returns the seconds it took."""
        t0 = time.monotonic()
        before = self.boot_id()
        # started, not waited for: the shutdown may stop the guest agent before it reports the
        # command's end (then `guest-exec-status` no longer knows the pid)
        self.qga("guest-exec", path="/bin/systemctl", arg=["--no-block", "reboot"])
        self.qga_close()
        deadline = t0 + timeout
        while True:
            self._check_alive()
            self.qga_connect(deadline)
            try:
                if self.boot_id() != before:
                    break
            except (GuestError, ConnectionError, OSError):
                pass
            self.qga_close()
            time.sleep(1)
            if time.monotonic() > deadline:
                raise GuestError(f"no new boot within {timeout}s\n{self.tail()}")
        self.set_clock()
        state = self.run(["systemctl", "is-system-running", "--wait"], check=False, timeout=300).stdout.strip()
        took = time.monotonic() - t0
        timing(f"vm reboot: {state} after {took:.1f}s")
        if self.payload is not None:
            self.run(f"mkdir -p {PAYLOAD_MOUNT} && mount -o ro /dev/disk/by-id/virtio-payload {PAYLOAD_MOUNT}")
        return took


def _main(argv: list[str]) -> int:
    """python3 tests/lib/vm.py build: build (or find) the image and its saved state;
    python3 tests/lib/vm.py check: restore it once and show the guest's kernel, state, addresses."""
    if argv[:1] == ["build"]:
        img = build_image(ct.build_rootfs())
        print(img.dir)
        return 0
    if argv[:1] == ["check"]:
        img = build_image(ct.build_rootfs())
        with Vm(img) as m:
            print(m.run("uname -r; systemctl is-system-running; ip -br addr").stdout)
        return 0
    print("usage: vm.py build|check", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
