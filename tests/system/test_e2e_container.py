"""End to end, container tier: the INSTALLED .deb under a real systemd against a real Git server.

What is proved: the package built by packaging/build.sh from the agent under test, installed with
dpkg in a booted bookworm container (systemd as PID 1, a network namespace of its own) and
started as `gitops-agent.service`, pulls its branch `hosts/gatest` over smart HTTP, converges
the host (a template, a package from the local APT test repository whose systemd unit it enables
and starts, a user), and pushes status documents to `status/gatest` of a second repository on
the same server; then, while it runs as a daemon:

  1. first converge: the files, package, service and user are there; a status commit
     `gatest: changed <commit>` says so;
  2. a new signed commit changes the template and notifies a handler: the service is restarted
     exactly once (systemd's InvocationID and ExecMainStartTimestampMonotonic move, NRestarts does
     not, and its journal shows one start, with the new configuration);
  3. drift: the template's file edited by hand, then the service stopped by hand: both put back
     within seconds, and the status says `drift: true, drift_action: corrected` for each;
  4. a commit with invalid YAML: nothing changes on the host, the status is `invalid` and names
     local.yml and the line; the next good commit is applied;
  5. an unsigned commit (`signing: {require: true}`): refused, the status says why, the host
     is unchanged; the next signed commit is applied;
  6. the Git server stopped: the daemon keeps enforcing (a hand edit is put back) and the status
     written during the outage lands on the server once it is started again on the same port.

How: one container and one server for the module (the scenarios run in order, each its own test,
each starting from the state the previous ones left, and asserting only relative to it). The
server is agent/src/git/testdata/cgi_server.py (`git http-backend` behind a CGI bridge) run on
the host with `ip netns exec <the container's namespace>` (tests/lib/gitserver.py): it listens on
127.0.0.1 of the container's namespace, so the agent reaches http://127.0.0.1:PORT/git/... and
nothing listens on or leaves through the host's network. The bare repositories are host
directories: the test commits into a work tree (SSH-signed: `git -c gpg.format=ssh -c
user.signingkey=KEY commit -S`, an `ssh-keygen -t ed25519` key whose public half is in the
container's /etc/gitops-agent/allowed_signers) and pushes straight into the fleet repository, and
reads the status documents (status.yml of each commit of status/gatest) from the status
repository. The server is stopped by PID (its process group) in every case.

The daemon polls every 2 s without splay, `enforce` stays at its default (30 min), so every
correction seen here comes from the drift watch. Waits are polls with deadlines.

Under pytest-xdist (`-n 2`, the default `load` distribution) the scenarios may land on different
workers: a scenario whose worker has not run scenario 1 runs it first, in that worker's own
container (about 5 s more); when scenario 1 failed, the others skip. (`--dist loadgroup` with an
`xdist_group` mark would keep them together, but pytest-xdist 3.8 under pytest 9 does not apply
the group: it sets `item._nodeid`, which pytest 9 no longer reads.)
"""
from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

import pytest
import yaml

import container as ct
from conftest import require_tools
from container import APT_MOUNT
from gitserver import Fleet, GitHttpServer, git, ssh_keygen

HOST = ct.HOSTNAME
BRANCH = f"hosts/{HOST}"
STATUS_BRANCH = f"status/{HOST}"
AGENT = "gitops-agent.service"
SVC = "gatest-hello.service"
CONF = "/etc/gatest-hello.conf"
USER = "gaops"
DEB_AT = "/srv/gitops-agent.deb"

TEMPLATE = """\
# managed by gitops-agent on {{ ansible_hostname }}
greeting={{ greeting }}
"""


def playbook(greeting: str) -> str:
    return f"""\
- hosts: all
  gather_facts: true
  vars:
    greeting: {greeting}
  tasks:
    - name: hello package
      apt: {{name: gatest-hello, update_cache: true, cache_valid_time: 3600}}
    - name: hello config
      template: {{src: hello.conf.j2, dest: {CONF}, mode: "0644"}}
      notify: restart hello
    - name: hello running and enabled
      systemd: {{name: gatest-hello, state: started, enabled: true}}
    - name: operator account
      user: {{name: {USER}, comment: gitops e2e, shell: /bin/bash, uid: 2345}}
  handlers:
    - name: restart hello
      systemd: {{name: gatest-hello, state: restarted}}
"""


def broken_playbook(greeting: str) -> tuple[str, int]:
    """playbook(GREETING) with a YAML syntax error; returns (text, 1-based line of the error)."""
    lines = playbook(greeting).splitlines(keepends=True)
    at = next(i for i, ln in enumerate(lines) if "name: operator account" in ln)
    lines.insert(at, "    - name: broken: a second colon in a plain scalar\n")
    return "".join(lines), at + 1


def conf_for(greeting: str) -> str:
    return f"# managed by gitops-agent on {HOST}\ngreeting={greeting}\n"


def config(server: GitHttpServer) -> str:
    return f"""\
# written by tests/system/test_e2e_container.py
repo: {server.url("fleet.git")}
interval: 2s
splay: 0s
signing: {{allowed_signers: /etc/gitops-agent/allowed_signers, require: true}}
status:
  repo: {server.url("status.git")}
"""


# --------------------------------------------------------------------------
# the module's world: container + server + repositories
# --------------------------------------------------------------------------
class E2E:
    def __init__(self, tmp: Path, c: ct.Container, server: GitHttpServer, fleet: Fleet, status_git: Path,
                 pubkey: str):
        self.tmp, self.c, self.server, self.fleet, self.status_git = tmp, c, server, fleet, status_git
        self.pubkey = pubkey
        self.first: str | None = None          # None: not run; "ok"; or why it failed
        self.greeting: str | None = None       # the greeting of the last applied commit
        self._docs: dict[str, dict] = {}

    # -- status repository on the host --------------------------------------
    def status_log(self) -> list[tuple[str, int, str]]:
        """(sha, commit time, subject) of status/gatest on the server, newest first."""
        out = git("--git-dir", str(self.status_git), "log", "--format=%H %ct %s", STATUS_BRANCH, "--",
                  check=False)
        return [(ln.split(" ", 2)[0], int(ln.split(" ", 2)[1]), ln.split(" ", 2)[2])
                for ln in out.splitlines() if ln.strip()]

    def status_head(self) -> str | None:
        log = self.status_log()
        return log[0][0] if log else None

    def doc(self, sha: str) -> dict:
        if sha not in self._docs:
            self._docs[sha] = yaml.safe_load(git("--git-dir", str(self.status_git), "show", f"{sha}:status.yml"))
        return self._docs[sha]

    def docs_since(self, base: str | None) -> list[tuple[str, int, str, dict]]:
        """Status commits after BASE (exclusive), oldest first: (sha, time, subject, document)."""
        out = []
        for sha, t, subject in self.status_log():
            if sha == base:
                break
            out.append((sha, t, subject, self.doc(sha)))
        return out[::-1]

    def wait_status(self, what: str, pred, since: str | None, timeout: float = 30):
        """The first status commit after SINCE whose document satisfies PRED."""
        return self.wait(what, lambda: next((x for x in self.docs_since(since) if pred(x[3])), None), timeout)

    # -- container ----------------------------------------------------------
    def show(self, unit: str, *props: str) -> dict[str, str]:
        out = self.c.run(["systemctl", "show", unit, "-p", ",".join(props)]).stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def svc(self) -> dict[str, str]:
        return self.show(SVC, "ActiveState", "SubState", "InvocationID", "ExecMainStartTimestampMonotonic",
                         "NRestarts", "MainPID", "UnitFileState")

    def conf(self) -> str:
        return self.c.read_file(CONF)

    def cursor(self) -> str:
        out = self.c.run(["journalctl", "-n", "0", "--show-cursor", "--no-pager"]).stdout
        return out.strip().rsplit("-- cursor: ", 1)[1].strip()

    def hello_starts(self, cursor: str) -> list[str]:
        """The lines gatest-hello prints when it starts, since CURSOR."""
        out = self.c.run(["journalctl", "--no-pager", "-o", "cat", "-u", SVC, f"--after-cursor={cursor}"]).stdout
        return [ln for ln in out.splitlines() if " running (config: " in ln]

    def agent_log(self, cursor: str | None = None, lines: int = 80) -> str:
        argv = ["journalctl", "--no-pager", "-o", "short-monotonic", "-u", AGENT]
        argv += [f"--after-cursor={cursor}"] if cursor else ["-n", str(lines)]
        return self.c.run(argv, check=False).stdout

    # -- diagnostics and waiting ----------------------------------------------
    def diag(self) -> str:
        try:
            st = self.show(AGENT, "ActiveState", "SubState", "StatusText", "MainPID", "NRestarts")
        except Exception as e:  # noqa: BLE001 - the container may be gone
            st = f"(no systemctl show: {e})"
        log = "\n".join(f"  {sha[:7]} {subject}" for sha, _, subject in self.status_log()[:12])
        try:
            journal = self.agent_log(lines=60)
        except Exception as e:  # noqa: BLE001
            journal = f"(no journal: {e})"
        return (f"\n--- {AGENT}: {st}\n--- journal of {AGENT} (tail) ---\n{journal}"
                f"\n--- status/{HOST} on the server (newest first) ---\n{log}"
                f"\n--- git server log (tail) ---\n{self.server.log_tail(15)}")

    def wait(self, what: str, fn, timeout: float):
        deadline = time.monotonic() + timeout
        last = None
        while True:
            last = fn()
            if last:
                return last
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})"
                                     f"{self.diag()}")
            time.sleep(0.1)

    # -- scenario 1, also the prerequisite of the others ----------------------
    def need_first_converge(self):
        if self.first is None:
            self.first_converge()
        elif self.first != "ok":
            pytest.skip(f"the first converge failed: {self.first}")

    def first_converge(self):
        self.first = "failed (see test_first_converge)"
        try:
            self._first_converge()
        except BaseException as e:
            self.first = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
            raise
        self.first = "ok"

    def _first_converge(self):
        c, t0 = self.c, time.monotonic()
        c.run(["dpkg", "-i", DEB_AT])
        c.write_file("/etc/gitops-agent/allowed_signers", f'ops@example.org namespaces="git" {self.pubkey}\n')
        sha = self.fleet.commit("gatest: first", {"local.yml": playbook("one"), "templates/hello.conf.j2": TEMPLATE})
        c.write_file("/etc/gitops-agent/config.yml", config(self.server))
        # returns after READY=1, i.e. after the first converge (the postinst's queued start may
        # have been turned down by the ExecCondition before the config had a repo, or be this one)
        c.run(["systemctl", "start", AGENT], timeout=300)
        t_start = time.monotonic() - t0
        agent = self.show(AGENT, "ActiveState", "SubState", "StatusText")
        assert agent["ActiveState"] == "active", f"{AGENT} is not active after start: {agent}{self.diag()}"

        # the host
        assert self.conf() == conf_for("one"), f"{CONF}: {self.conf()!r}{self.diag()}"
        pkg = c.run(["dpkg-query", "-W", "-f=${db:Status-Abbrev}${Version}", "gatest-hello"], check=False).stdout
        assert pkg.split() == ["ii", "2.0"], f"gatest-hello not installed from the APT repo: {pkg!r}{self.diag()}"
        svc = self.svc()
        assert (svc["ActiveState"], svc["SubState"], svc["UnitFileState"]) == ("active", "running", "enabled"), \
            f"{SVC}: {svc}{self.diag()}"
        pw = c.run(["getent", "passwd", USER], check=False).stdout.strip().split(":")
        assert len(pw) == 7 and pw[2] == "2345" and pw[4] == "gitops e2e" and pw[6] == "/bin/bash", \
            f"user {USER}: {pw}{self.diag()}"

        # the status on the server
        _, _, subject, doc = self.wait_status(f"a status commit for {sha[:7]} on {STATUS_BRANCH}",
                                              lambda d: d.get("commit_applied") == sha, since=None)
        assert doc["result"] == "changed", doc
        assert subject.startswith(f"{HOST}: changed {sha[:7]}"), subject
        assert doc["host"] == HOST and doc["commit_seen"] == sha and "error" not in doc, doc
        assert doc["stats"]["failed"] == 0 and doc["stats"]["changed"] >= 5, doc["stats"]
        changed = {t["name"] for t in doc["tasks"] if t["changed"]}
        assert {"hello package", "hello config", "hello running and enabled", "operator account",
                "restart hello"} <= changed, doc["tasks"]
        assert str(doc.get("watch", "")).startswith("inotify:"), doc.get("watch")
        # status goes to the status repository only
        assert STATUS_BRANCH not in git("--git-dir", str(self.fleet.bare), "branch", "--list"), "status in fleet repo"
        self.greeting = "one"
        ct.timing(f"e2e container: first converge {time.monotonic() - t0:.1f}s (systemctl start {t_start:.1f}s)")


@pytest.fixture(scope="module")
def e2e(rootfs, apt_repo, packages, tmp_path_factory):
    require_tools("ssh-keygen", "git", hint="apt-get install openssh-client git")
    t0 = time.monotonic()
    tmp = tmp_path_factory.mktemp("e2e")
    srv_root = tmp / "srv"
    srv_root.mkdir()
    fleet_git, status_git = srv_root / "fleet.git", srv_root / "status.git"
    git("init", "-q", "--bare", str(fleet_git))
    git("init", "-q", "--bare", str(status_git))
    git("--git-dir", str(status_git), "config", "http.receivepack", "true")
    key = tmp / "fleet-signing-key"
    pubkey = ssh_keygen(key, "ops@example.org")
    fleet = Fleet(tmp / "work", fleet_git, BRANCH, signing_key=key)
    deb = tmp / "gitops-agent.deb"
    shutil.copy(packages["deb"], deb)
    binds = [ct.Bind(apt_repo.path, APT_MOUNT), ct.Bind(deb, DEB_AT)]
    c = ct.Container(rootfs, binds)       # no agent bound: the one under test is the .deb's
    server = None
    try:
        c.start()
        # lists updated here: the playbook's `cache_valid_time` then decides by their age alone
        # (a root file system built minutes ago has a fresh lists dir but no index of this repo)
        c.add_apt_repo(apt_repo, APT_MOUNT)
        server = GitHttpServer(srv_root, netns=c.netns, log=tmp / "http.log")
        server.start()
        ct.timing(f"e2e container: setup (boot, git server on port {server.port}) {time.monotonic() - t0:.1f}s")
        yield E2E(tmp, c, server, fleet, status_git, pubkey)
    finally:
        try:
            if server is not None:
                server.stop()
        finally:
            c.stop()        # powers off (the agent gets SIGTERM), kills by PID if it must


@pytest.fixture
def e(request, e2e):
    """The module's E2E; on a failure, the agent's journal and the status log go to stderr."""
    yield e2e
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        sys.stderr.write(e2e.diag() + "\n")


def applied(e: E2E) -> str:
    """The commit the latest status document says the host is on."""
    return e.doc(e.status_head())["commit_applied"]


# --------------------------------------------------------------------------
# the scenarios
# --------------------------------------------------------------------------
def test_first_converge_files_package_service_user_and_status(e):
    if e.first is not None:
        pytest.skip("already run by an earlier scenario on this worker")
    e.first_converge()


def test_new_signed_commit_changes_template_and_restarts_service_once(e):
    e.need_first_converge()
    t0 = time.monotonic()
    before, cursor, base = e.svc(), e.cursor(), e.status_head()
    assert before["ActiveState"] == "active", before
    sha = e.fleet.commit("greeting two", {"local.yml": playbook("two")})
    _, _, subject, doc = e.wait_status(f"the status of {sha[:7]}", lambda d: d.get("commit_applied") == sha,
                                       since=base)
    assert doc["result"] == "changed" and subject.startswith(f"{HOST}: changed {sha[:7]}"), (subject, doc)
    e.greeting = "two"
    assert e.conf() == conf_for("two"), e.conf()
    by_name = {}
    for t in doc["tasks"]:
        by_name.setdefault(t["name"], []).append(t)
    assert [t["changed"] for t in by_name["hello config"]] == [True], doc["tasks"]
    assert [t["changed"] for t in by_name.get("restart hello", [])] == [True], \
        f"the handler should have run once: {doc['tasks']}"
    assert not any(t["changed"] for t in doc["tasks"] if t["name"] not in ("hello config", "restart hello")), \
        doc["tasks"]

    # the service: one new start, with the new configuration, and no crash restart
    starts = e.wait("the restarted gatest-hello's start line in its journal", lambda: e.hello_starts(cursor), 10)
    after = e.svc()
    assert after["ActiveState"] == "active", after
    assert after["InvocationID"] != before["InvocationID"], (before, after)
    assert int(after["ExecMainStartTimestampMonotonic"]) > int(before["ExecMainStartTimestampMonotonic"]), \
        (before, after)
    assert after["NRestarts"] == before["NRestarts"], (before, after)
    # "exactly once": one start since the commit, and it stays one (a drift pass misjudging the
    # agent's own write must not restart it again: watch a little longer than the drift debounce)
    end = time.monotonic() + 2.0
    while time.monotonic() < end:
        starts = e.hello_starts(cursor)
        assert len(starts) == 1, f"gatest-hello started {len(starts)} times since the commit: {starts}{e.diag()}"
        assert e.svc()["InvocationID"] == after["InvocationID"], "restarted again"
        time.sleep(0.2)
    assert "greeting=two" in starts[0], starts
    ct.timing(f"e2e container: new commit + handler restart {time.monotonic() - t0:.1f}s")


def test_drift_file_edited_and_service_stopped_are_corrected(e):
    e.need_first_converge()
    t0 = time.monotonic()
    want, base = conf_for(e.greeting), e.status_head()
    assert e.conf() == want

    # a managed file edited by hand: put back by the inotify watch
    e.c.write_file(CONF, "greeting=edited by hand\n")
    t = time.monotonic()
    e.wait(f"{CONF} put back", lambda: e.conf() == want, 10)
    file_s = time.monotonic() - t
    _, _, subject, doc = e.wait_status(
        "a drift status for the file", lambda d: any(x["name"] == "hello config" and x.get("drift")
                                                     for x in d.get("tasks", [])), since=base)
    task = next(x for x in doc["tasks"] if x["name"] == "hello config")
    assert task["drift_action"] == "corrected" and task["changed"], task
    assert any(CONF in line for line in task.get("differed", [])), task
    assert doc["drift"]["corrected"] >= 1 and doc["result"] == "changed", doc
    assert subject.startswith(f"{HOST}: drift corrected"), subject

    # the managed service stopped by hand: started again after the units check (every 10 s)
    e.wait(f"{SVC} active before stopping it", lambda: e.svc()["ActiveState"] == "active", 10)
    base = e.status_head()
    e.c.systemctl("stop", "gatest-hello")
    assert e.svc()["ActiveState"] != "active"
    t = time.monotonic()
    e.wait(f"{SVC} started again by the agent", lambda: e.svc()["ActiveState"] == "active", 30)
    unit_s = time.monotonic() - t
    _, _, subject, doc = e.wait_status(
        "a drift status for the service", lambda d: any(x["name"] == "hello running and enabled" and x.get("drift")
                                                        for x in d.get("tasks", [])), since=base)
    task = next(x for x in doc["tasks"] if x["name"] == "hello running and enabled")
    assert task["drift_action"] == "corrected" and task["changed"], task
    assert doc["drift"]["corrected"] >= 1, doc
    assert subject.startswith(f"{HOST}: drift corrected"), subject
    assert e.conf() == want
    ct.timing(f"e2e container: drift {time.monotonic() - t0:.1f}s (file put back in {file_s:.2f}s, "
              f"service in {unit_s:.2f}s)")


def test_invalid_yaml_changes_nothing_then_next_good_commit_applies(e):
    e.need_first_converge()
    t0 = time.monotonic()
    conf0, svc0, base, last = e.conf(), e.svc(), e.status_head(), applied(e)
    text, line = broken_playbook("bad")
    bad = e.fleet.commit("broken yaml", {"local.yml": text})
    _, _, subject, doc = e.wait_status(f"the status of the invalid commit {bad[:7]}",
                                       lambda d: d.get("commit_seen") == bad, since=base)
    assert doc["result"] == "invalid", doc
    assert f"local.yml:{line}" in doc.get("error", ""), f"the error should name local.yml:{line}: {doc.get('error')!r}"
    assert doc["commit_applied"] == last, doc
    assert subject.startswith(f"{HOST}: invalid {bad[:7]}"), subject
    # nothing changed on the host
    assert e.conf() == conf0
    svc1 = e.svc()
    assert svc1["InvocationID"] == svc0["InvocationID"] and svc1["ActiveState"] == "active", (svc0, svc1)
    state = json.loads(e.c.read_file("/var/lib/gitops-agent/state.json"))
    assert state["last_applied"] == last, state

    good = e.fleet.commit("greeting four", {"local.yml": playbook("four")})
    _, _, subject, doc = e.wait_status(f"the status of the good commit {good[:7]}",
                                       lambda d: d.get("commit_applied") == good, since=base)
    assert doc["result"] == "changed", doc
    e.greeting = "four"
    assert e.conf() == conf_for("four")
    ct.timing(f"e2e container: invalid YAML then a good commit {time.monotonic() - t0:.1f}s")


def test_unsigned_commit_is_refused_then_next_signed_commit_applies(e):
    e.need_first_converge()
    t0 = time.monotonic()
    conf0, svc0, base, last = e.conf(), e.svc(), e.status_head(), applied(e)
    unsigned = e.fleet.commit("unsigned change", {"local.yml": playbook("unsigned")}, signed=False)
    _, _, subject, doc = e.wait_status(f"the status of the unsigned commit {unsigned[:7]}",
                                       lambda d: d.get("commit_seen") == unsigned, since=base)
    assert doc["result"] == "refused", doc
    assert "commit is not signed" in doc.get("error", ""), doc
    assert doc["commit_applied"] == last, doc
    assert subject == f"{HOST}: refused {unsigned[:7]} (commit is not signed)", subject
    assert e.conf() == conf0
    svc1 = e.svc()
    assert svc1["InvocationID"] == svc0["InvocationID"] and svc1["ActiveState"] == "active", (svc0, svc1)

    signed = e.fleet.commit("greeting five, signed", {"local.yml": playbook("five")})
    _, _, subject, doc = e.wait_status(f"the status of the signed commit {signed[:7]}",
                                       lambda d: d.get("commit_applied") == signed, since=base)
    assert doc["result"] == "changed", doc
    e.greeting = "five"
    assert e.conf() == conf_for("five")
    ct.timing(f"e2e container: unsigned refused then a signed commit {time.monotonic() - t0:.1f}s")


def test_git_server_down_enforcement_goes_on_and_status_lands_when_back(e):
    e.need_first_converge()
    t0 = time.monotonic()
    want, base, cursor = conf_for(e.greeting), e.status_head(), e.cursor()
    try:
        e.server.stop()
        t_down = time.time()
        e.wait("the agent to see the server gone", lambda: "fetch failed" in e.agent_log(cursor), 15)

        # enforcement goes on from the local copy: a hand edit is put back
        e.c.write_file(CONF, "greeting=edited during the outage\n")
        e.wait(f"{CONF} put back while the server is down", lambda: e.conf() == want, 10)
        e.wait("the agent to keep a status push pending",
               lambda: "pending" in e.show(AGENT, "StatusText")["StatusText"], 15)
        assert e.status_head() == base, "a status landed while the server was down?"
        assert e.show(AGENT, "ActiveState")["ActiveState"] == "active"
    finally:
        t_up = time.time()
        e.server.start()            # same port
    docs = e.wait("the status written during the outage on the server",
                  lambda: [x for x in e.docs_since(base) if x[3].get("drift")], 30)
    sha, ctime, subject, doc = docs[0]
    assert int(t_down) - 1 <= ctime <= t_up + 1, f"status commit {sha[:7]} at {ctime}, outage {t_down}..{t_up}"
    task = next(x for x in doc["tasks"] if x["name"] == "hello config")
    assert task.get("drift") and task["drift_action"] == "corrected", task
    e.wait("the agent reachable again", lambda: "reachable again" in e.agent_log(cursor), 15)
    # and it pulls again: a new commit is applied
    sha = e.fleet.commit("greeting six", {"local.yml": playbook("six")})
    e.wait_status(f"the status of {sha[:7]} after the outage", lambda d: d.get("commit_applied") == sha,
                  since=base)
    e.greeting = "six"
    assert e.conf() == conf_for("six")
    ct.timing(f"e2e container: git server outage {time.monotonic() - t0:.1f}s")
