//! Test support for the end-to-end tests: Git servers on 127.0.0.1 (`git http-backend` behind the
//! CGI bridge of `src/git/testdata/cgi_server.py`, `sshd -f own_config` with key auth and a
//! known_hosts file) and plain `file://`, all behind one [`Remote`] so that a scenario runs the
//! same over every transport.
//!
//! The Git transport tests (`tests/git_transports/`) use these servers too. Every server runs in
//! its own process group and is killed as a group when its guard drops, also when a test fails.

#![allow(dead_code)]

use std::io::BufRead;
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// `git` with the machine's config ignored and a fixed identity; panics on failure, returns the
/// trimmed stdout.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = git_cmd(dir).args(args).output().expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?} in {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

pub fn git_cmd(dir: &Path) -> Command {
    let mut cmd = Command::new("git");
    cmd.current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .args(["-c", "user.name=Ops", "-c", "user.email=ops@example.org"])
        .args(["-c", "init.defaultBranch=main"])
        .stdin(Stdio::null());
    cmd
}

/// A server process in its own process group, killed as a group when dropped (`git
/// http-backend` children of the CGI bridge, sshd's per-connection children).
pub struct Server(Child);

impl Server {
    pub fn spawn(cmd: &mut Command) -> Server {
        Server(cmd.process_group(0).spawn().expect("start a test server"))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let group = nix::unistd::Pid::from_raw(self.0.id() as i32);
        let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn wait_for_port(server: &mut Server, port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = server.0.try_wait() {
            panic!("{what} exited early: {status}");
        }
        assert!(Instant::now() < deadline, "{what} did not listen on {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `git http-backend` for the bare repositories under `root` at `http://127.0.0.1:PORT/git/`;
/// requests are logged to `log`. `port`: listen there (a restart); `auth`: `user:password`
/// required as HTTP Basic auth.
pub fn http_server(
    root: &Path,
    log: &Path,
    port: Option<u16>,
    auth: Option<&str>,
) -> (Server, u16) {
    let mut extra = vec![];
    if let Some(port) = port {
        extra.extend(["--port".to_string(), port.to_string()]);
    }
    if let Some(auth) = auth {
        extra.extend(["--auth".to_string(), auth.to_string()]);
    }
    cgi_server(root, log, &extra)
}

/// `testdata/cgi_server.py ROOT LOG EXTRA...`; returns the server and its port.
pub fn cgi_server(root: &Path, log: &Path, extra: &[String]) -> (Server, u16) {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/src/git/testdata/cgi_server.py"
    );
    let mut cmd = Command::new("python3");
    cmd.arg(script).arg(root).arg(log).args(extra);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let mut server = Server::spawn(&mut cmd);
    let stdout = server.0.stdout.take().unwrap();
    let mut line = String::new();
    std::io::BufReader::new(stdout)
        .read_line(&mut line)
        .unwrap();
    let port = line
        .trim()
        .strip_prefix("PORT ")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("cgi_server said {line:?}"));
    (server, port)
}

/// A private CA and a certificate it issued for 127.0.0.1 (made with the `openssl` CLI).
pub struct PrivateCa {
    pub ca_cert: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("openssl (the CLI) is needed by the https tests");
    assert!(out.status.success(), "openssl {args:?}: {out:?}");
}

impl PrivateCa {
    pub fn new(dir: &Path) -> PrivateCa {
        std::fs::create_dir_all(dir).unwrap();
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ];
        let mut ca = vec!["req", "-x509", "-days", "2", "-subj", "/CN=gitops test CA"];
        ca.extend(ec);
        ca.extend([
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
        openssl(dir, &ca);
        let mut csr = vec!["req", "-subj", "/CN=127.0.0.1"];
        csr.extend(ec);
        csr.extend(["-keyout", "server.key", "-out", "server.csr"]);
        openssl(dir, &csr);
        std::fs::write(
            dir.join("server.ext"),
            "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
             keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                "server.ext",
                "-out",
                "server.pem",
            ],
        );
        PrivateCa {
            ca_cert: dir.join("ca.pem"),
            server_cert: dir.join("server.pem"),
            server_key: dir.join("server.key"),
        }
    }

    /// The arguments that make cgi_server.py serve https:// with this CA's certificate.
    pub fn server_args(&self) -> Vec<String> {
        vec![
            "--tls-cert".into(),
            self.server_cert.display().to_string(),
            "--tls-key".into(),
            self.server_key.display().to_string(),
        ]
    }
}

/// Keys for SSH: a host key shared by every sshd of a test, one client key, and the
/// known_hosts file listing each sshd started with them.
pub struct SshKeys {
    pub dir: PathBuf,
    pub host_key: PathBuf,
    pub client_key: PathBuf,
    pub known_hosts: PathBuf,
    pub user: String,
}

pub fn ssh_keygen(path: &Path, comment: &str) {
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
        .arg(path)
        .stdin(Stdio::null())
        .output()
        .expect("ssh-keygen (openssh-client) runs");
    assert!(out.status.success(), "{out:?}");
}

impl SshKeys {
    pub fn new(dir: &Path) -> SshKeys {
        std::fs::create_dir_all(dir).unwrap();
        let host_key = dir.join("host_key");
        let client_key = dir.join("client_key");
        ssh_keygen(&host_key, "host");
        ssh_keygen(&client_key, "client");
        std::fs::copy(dir.join("client_key.pub"), dir.join("authorized_keys")).unwrap();
        let known_hosts = dir.join("known_hosts");
        std::fs::write(&known_hosts, "").unwrap();
        let user = String::from_utf8(Command::new("id").arg("-un").output().unwrap().stdout)
            .unwrap()
            .trim()
            .to_string();
        SshKeys {
            dir: dir.to_path_buf(),
            host_key,
            client_key,
            known_hosts,
            user,
        }
    }

    /// Writes an sshd config for `port` and adds the port to known_hosts.
    fn sshd_config(&self, port: u16) -> PathBuf {
        let config = self.dir.join(format!("sshd_config.{port}"));
        std::fs::write(
            &config,
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nAuthorizedKeysFile {}\n\
                 PidFile {}\nStrictModes no\nUsePAM no\nAcceptEnv GIT_PROTOCOL\n\
                 PasswordAuthentication no\nKbdInteractiveAuthentication no\n\
                 PermitRootLogin prohibit-password\nLogLevel ERROR\n",
                self.host_key.display(),
                self.dir.join("authorized_keys").display(),
                self.dir.join(format!("sshd.{port}.pid")).display(),
            ),
        )
        .unwrap();
        let public = std::fs::read_to_string(self.dir.join("host_key.pub")).unwrap();
        let mut fields = public.split_whitespace();
        let line = format!(
            "[127.0.0.1]:{port} {} {}\n",
            fields.next().unwrap(),
            fields.next().unwrap()
        );
        let mut known = std::fs::read_to_string(&self.known_hosts).unwrap();
        known.push_str(&line);
        std::fs::write(&self.known_hosts, known).unwrap();
        config
    }
}

/// `sshd -D -f <config>`; fails loudly when sshd is missing (the SSH transport must be tested,
/// not skipped).
fn sshd(config: &Path, port: u16) -> Server {
    let sshd = Path::new("/usr/sbin/sshd");
    assert!(
        sshd.exists(),
        "/usr/sbin/sshd is missing: apt-get install openssh-server (tests/setup-host.sh installs it)"
    );
    std::fs::create_dir_all("/run/sshd").unwrap();
    let mut server = Server::spawn(
        Command::new(sshd)
            .args(["-D", "-e", "-f"])
            .arg(config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit()),
    );
    wait_for_port(&mut server, port, "sshd");
    server
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    File,
    Http,
    Ssh,
}

/// A Git server for the bare repositories in `base` over one transport; `stop` and `start` take
/// it down and bring it back on the same URL (for `file://`: the directory moves away and back).
pub struct Remote {
    pub transport: Transport,
    pub base: PathBuf,
    server: Option<Server>,
    port: u16,
    auth: Option<String>,
    sshd_config: Option<PathBuf>,
    user: String,
}

impl Remote {
    /// Starts serving `base` (created when missing). `keys` is needed for SSH; `auth`
    /// (`user:password`) makes an HTTP server require Basic auth.
    pub fn start(
        transport: Transport,
        base: &Path,
        keys: Option<&SshKeys>,
        auth: Option<&str>,
    ) -> Remote {
        std::fs::create_dir_all(base).unwrap();
        let mut remote = Remote {
            transport,
            base: base.to_path_buf(),
            server: None,
            port: 0,
            auth: auth.map(str::to_string),
            sshd_config: None,
            user: String::new(),
        };
        match transport {
            Transport::File => {}
            Transport::Http => {
                let (server, port) = http_server(base, &remote.log(), None, auth);
                remote.server = Some(server);
                remote.port = port;
            }
            Transport::Ssh => {
                let keys = keys.expect("SSH needs keys");
                let port = free_port();
                let config = keys.sshd_config(port);
                remote.server = Some(sshd(&config, port));
                remote.port = port;
                remote.sshd_config = Some(config);
                remote.user = keys.user.clone();
            }
        }
        remote
    }

    /// The request log of the HTTP server (next to `base`).
    pub fn log(&self) -> PathBuf {
        self.base.with_extension("http.log")
    }

    fn away(&self) -> PathBuf {
        self.base.with_extension("away")
    }

    /// The URL of the bare repository `name` (e.g. `fleet.git`) under `base`.
    pub fn url(&self, name: &str) -> String {
        match self.transport {
            Transport::File => format!("file://{}", self.base.join(name).display()),
            Transport::Http => format!("http://127.0.0.1:{}/git/{name}", self.port),
            Transport::Ssh => format!(
                "ssh://{}@127.0.0.1:{}{}",
                self.user,
                self.port,
                self.base.join(name).display()
            ),
        }
    }

    /// Takes the server down: nothing listens on its port any more (file://: the directory is
    /// gone).
    pub fn stop(&mut self) {
        match self.transport {
            Transport::File => std::fs::rename(&self.base, self.away()).unwrap(),
            _ => drop(self.server.take()),
        }
    }

    /// Brings the server back on the same URL.
    pub fn start_again(&mut self) {
        match self.transport {
            Transport::File => std::fs::rename(self.away(), &self.base).unwrap(),
            Transport::Http => {
                let (server, port) = http_server(
                    &self.base,
                    &self.log(),
                    Some(self.port),
                    self.auth.as_deref(),
                );
                assert_eq!(port, self.port);
                self.server = Some(server);
            }
            Transport::Ssh => {
                self.server = Some(sshd(self.sshd_config.as_ref().unwrap(), self.port));
            }
        }
    }
}

/// Runs the agent binary.
pub fn agent(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gitops-agent"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The short hostname, as the agent's default branch `hosts/{hostname}` uses it.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .split('.')
        .next()
        .unwrap()
        .to_string()
}
