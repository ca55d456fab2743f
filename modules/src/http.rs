//! The HTTP client of `get_url`, `uri` and `unarchive` (a URL `src`): one request at a time,
//! blocking, over reqwest + rustls on the *ring* provider (the agent's Git transport uses the same
//! stack). `file://` URLs are read from the host, as Ansible's `fetch_url` does; any other
//! scheme is refused.
//!
//! TLS trusts the system's CA certificates plus the agent's `http.ca_file`, which the agent
//! names once at start ([`set_ca_file`]). Proxies come from the environment (`http_proxy`,
//! `https_proxy`, `no_proxy`) unless the task says `use_proxy: no`.

use std::path::PathBuf;
use std::sync::{Once, OnceLock};
use std::time::{Duration, SystemTime};

use reqwest::blocking::Client;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

/// The agent's `http.ca_file`: certificates trusted besides the system's.
static CA_FILE: OnceLock<PathBuf> = OnceLock::new();

/// Names the agent's `http.ca_file` (once per process; later calls are ignored).
pub fn set_ca_file(path: PathBuf) {
    let _ = CA_FILE.set(path);
}

/// How redirects are followed (Ansible's `follow_redirects`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Redirects {
    /// Never.
    None,
    /// Only for GET and HEAD (Ansible's `safe`, the default).
    Safe,
    /// Always.
    All,
}

impl Redirects {
    /// Ansible's value (`yes`/`no` are the old spellings of `all`/`none`).
    pub fn parse(value: &str) -> Result<Redirects, HttpError> {
        match value {
            "none" | "no" | "false" | "False" => Ok(Redirects::None),
            "safe" => Ok(Redirects::Safe),
            "all" | "yes" | "true" | "True" => Ok(Redirects::All),
            other => Err(HttpError::Unsupported(format!(
                "follow_redirects: {other} is not supported (none, safe, all)"
            ))),
        }
    }
}

/// What every request of a task shares (Ansible's `url_argument_spec`).
#[derive(Debug, Clone)]
pub struct ClientOptions {
    pub timeout: Duration,
    pub validate_certs: bool,
    pub use_proxy: bool,
    pub http_agent: String,
    pub redirects: Redirects,
}

impl Default for ClientOptions {
    fn default() -> ClientOptions {
        ClientOptions {
            timeout: Duration::from_secs(10),
            validate_certs: true,
            use_proxy: true,
            http_agent: "ansible-httpget".into(),
            redirects: Redirects::Safe,
        }
    }
}

/// Credentials (`url_username`/`url_password`); without `force` they are sent only when the
/// server asks (a 401 with `WWW-Authenticate: Basic`), as urllib's basic auth handler does.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub user: String,
    pub password: String,
    pub force: bool,
}

/// One request.
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
    pub credentials: Option<Credentials>,
    /// Sent as `If-Modified-Since` (get_url on an existing `dest`).
    pub if_modified_since: Option<SystemTime>,
}

/// A response, whatever its status.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    /// The URL finally answered (after redirects).
    pub url: String,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Ansible's `msg`: `OK (N bytes)`, or `HTTP Error 404: Not Found`.
    pub msg: String,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum HttpError {
    #[error(
        "unsupported URL scheme in {0}: only http://, https:// and file:// URLs are supported"
    )]
    Scheme(String),
    #[error("{0}")]
    Unsupported(String),
    /// The request did not get a response (Ansible: status -1).
    #[error("Request failed: {0}")]
    Failed(String),
    #[error("http.ca_file {path}: {problem}")]
    CaFile { path: String, problem: String },
}

/// The scheme of `url` if the client supports it, else the error naming it.
pub fn check_scheme(url: &str) -> Result<(), HttpError> {
    let lower = url.to_ascii_lowercase();
    if ["http://", "https://", "file://"]
        .iter()
        .any(|s| lower.starts_with(s))
    {
        Ok(())
    } else {
        Err(HttpError::Scheme(url.to_string()))
    }
}

/// Sends `req` and reads the whole response.
pub fn send(opts: &ClientOptions, req: &Request) -> Result<Response, HttpError> {
    check_scheme(&req.url)?;
    if req.url.to_ascii_lowercase().starts_with("file://") {
        return read_file_url(req);
    }
    let client = client(opts, &req.method, req.url.starts_with("http://"))?;
    let forced = req.credentials.as_ref().filter(|c| c.force);
    let first = execute(&client, req, forced)?;
    if first.status().as_u16() == 401 {
        if let Some(c) = req.credentials.as_ref().filter(|c| !c.force) {
            let basic = first.headers().get_all("www-authenticate").iter().any(|v| {
                v.to_str()
                    .is_ok_and(|s| s.to_ascii_lowercase().starts_with("basic"))
            });
            if basic {
                return read_response(execute(&client, req, Some(c))?);
            }
        }
    }
    read_response(first)
}

fn execute(
    client: &Client,
    req: &Request,
    credentials: Option<&Credentials>,
) -> Result<reqwest::blocking::Response, HttpError> {
    let method = reqwest::Method::from_bytes(req.method.as_bytes())
        .map_err(|_| HttpError::Unsupported(format!("invalid HTTP method {}", req.method)))?;
    let mut headers = HeaderMap::new();
    for (k, v) in &req.headers {
        let name = HeaderName::from_bytes(k.as_bytes())
            .map_err(|_| HttpError::Unsupported(format!("invalid header name {k:?}")))?;
        let value = HeaderValue::from_str(v)
            .map_err(|_| HttpError::Unsupported(format!("invalid value of header {k}")))?;
        headers.insert(name, value);
    }
    if let Some(t) = req.if_modified_since {
        if let Ok(v) = HeaderValue::from_str(&http_date(t)) {
            headers.insert(reqwest::header::IF_MODIFIED_SINCE, v);
        }
    }
    let mut builder = client.request(method, &req.url).headers(headers);
    if let Some(c) = credentials {
        builder = builder.basic_auth(&c.user, Some(&c.password));
    }
    if let Some(body) = &req.body {
        builder = builder.body(body.clone());
    }
    builder
        .send()
        .map_err(|e| HttpError::Failed(error_chain(&e)))
}

fn read_response(resp: reqwest::blocking::Response) -> Result<Response, HttpError> {
    let status = resp.status();
    let url = resp.url().to_string();
    let headers: Vec<(String, String)> = resp
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_ascii_lowercase(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let length = resp
        .headers()
        .get(reqwest::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("unknown")
        .to_string();
    let body = resp
        .bytes()
        .map_err(|e| HttpError::Failed(error_chain(&e)))?
        .to_vec();
    let msg = if status.is_success() {
        format!("OK ({length} bytes)")
    } else {
        format!(
            "HTTP Error {}: {}",
            status.as_u16(),
            status.canonical_reason().unwrap_or("")
        )
    };
    Ok(Response {
        status: status.as_u16(),
        url,
        headers,
        body,
        msg,
    })
}

/// A `file://` URL: the file's content with status 200, as urllib's file handler answers.
fn read_file_url(req: &Request) -> Result<Response, HttpError> {
    let path = &req.url["file://".len()..];
    let body = std::fs::read(path).map_err(|e| {
        HttpError::Failed(format!(
            "<urlopen error [Errno {}] {}: '{path}'>",
            e.raw_os_error().unwrap_or(0),
            io_text(&e)
        ))
    })?;
    let len = body.len();
    Ok(Response {
        status: 200,
        url: req.url.clone(),
        headers: vec![("content-length".into(), len.to_string())],
        body: if req.method == "HEAD" {
            Vec::new()
        } else {
            body
        },
        msg: format!("OK ({len} bytes)"),
    })
}

/// The OS message without Rust's " (os error N)" suffix.
fn io_text(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

/// An HTTP date (`Sun, 06 Nov 1994 08:49:37 GMT`).
pub fn http_date(t: SystemTime) -> String {
    jiff::Timestamp::try_from(t)
        .map(|ts| ts.strftime("%a, %d %b %Y %H:%M:%S GMT").to_string())
        .unwrap_or_default()
}

fn install_tls_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Err only means a provider is installed already (the agent's): fine either way.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// What a client is built from: requests with the same options share one client (and its
/// connections and TLS roots, which take a while to load).
type ClientKey = (Duration, bool, bool, String, bool, bool);

fn client(opts: &ClientOptions, method: &str, plain: bool) -> Result<Client, HttpError> {
    static CLIENTS: std::sync::Mutex<Vec<(ClientKey, Client)>> = std::sync::Mutex::new(Vec::new());
    let follow = match opts.redirects {
        Redirects::None => false,
        Redirects::All => true,
        Redirects::Safe => matches!(method, "GET" | "HEAD"),
    };
    let key: ClientKey = (
        opts.timeout,
        opts.validate_certs,
        opts.use_proxy,
        opts.http_agent.clone(),
        follow,
        plain,
    );
    let mut clients = CLIENTS.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, c)) = clients.iter().find(|(k, _)| *k == key) {
        return Ok(c.clone());
    }
    let c = build_client(opts, follow, plain)?;
    clients.push((key, c.clone()));
    Ok(c)
}

fn build_client(opts: &ClientOptions, follow: bool, plain: bool) -> Result<Client, HttpError> {
    install_tls_provider();
    let extra = ca_certificates()?;
    let builder = || {
        let mut b = Client::builder()
            .timeout(opts.timeout)
            .user_agent(opts.http_agent.clone())
            .redirect(if follow {
                reqwest::redirect::Policy::limited(10)
            } else {
                reqwest::redirect::Policy::none()
            })
            .tls_danger_accept_invalid_certs(!opts.validate_certs);
        if !opts.use_proxy {
            b = b.no_proxy();
        }
        b
    };
    match builder().tls_certs_merge(extra.clone()).build() {
        Ok(c) => Ok(c),
        // A host without system CA certificates cannot build the platform verifier; plain
        // http:// speaks no TLS (unless redirected to https, which then fails to verify).
        Err(_) if plain => builder()
            .tls_certs_only(extra)
            .build()
            .map_err(|e| HttpError::Failed(error_chain(&e))),
        Err(e) => Err(HttpError::Failed(error_chain(&e))),
    }
}

fn ca_certificates() -> Result<Vec<reqwest::Certificate>, HttpError> {
    let Some(path) = CA_FILE.get() else {
        return Ok(Vec::new());
    };
    let bad = |problem: String| HttpError::CaFile {
        path: path.display().to_string(),
        problem,
    };
    let pem = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| bad(e.to_string()))?;
    if certs.is_empty() {
        return Err(bad("no certificate in the file".into()));
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemes() {
        assert!(check_scheme("http://127.0.0.1/x").is_ok());
        assert!(check_scheme("HTTPS://example.org/x").is_ok());
        assert!(check_scheme("file:///etc/hostname").is_ok());
        let e = check_scheme("ftp://example.org/x").unwrap_err().to_string();
        assert!(e.contains("ftp://example.org/x"), "{e}");
    }

    #[test]
    fn dates() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(784111777);
        assert_eq!(http_date(t), "Sun, 06 Nov 1994 08:49:37 GMT");
    }

    #[test]
    fn file_urls() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("a.txt");
        std::fs::write(&f, "hello").unwrap();
        let req = Request {
            method: "GET".into(),
            url: format!("file://{}", f.display()),
            ..Request::default()
        };
        let r = send(&ClientOptions::default(), &req).unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, &b"hello"[..]));
        assert_eq!(r.msg, "OK (5 bytes)");
        let missing = Request {
            url: format!("file://{}/nope", dir.path().display()),
            ..req
        };
        let e = send(&ClientOptions::default(), &missing)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("Request failed: "), "{e}");
    }
}

/// TLS against a local server whose certificate only `http.ca_file` knows.
#[cfg(test)]
mod tls_tests {
    use super::*;
    use std::io::BufRead;
    use std::process::{Command, Stdio};

    const SERVER: &str = r#"
import http.server, ssl, sys
srv = http.server.HTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[1], sys.argv[2])
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
print(srv.server_address[1], flush=True)
srv.serve_forever()
"#;

    #[test]
    fn private_ca_file_is_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let (ca, cert, key) = (d.join("ca.pem"), d.join("cert.pem"), d.join("key.pem"));
        std::fs::write(
            d.join("ext"),
            "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
        )
        .unwrap();
        // A private CA, and a server certificate it signed.
        let steps: [&[&str]; 3] = [
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "1",
                "-subj",
                "/CN=test-ca",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
            ],
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                "/CN=127.0.0.1",
                "-keyout",
                "key.pem",
                "-out",
                "leaf.csr",
            ],
            &[
                "x509",
                "-req",
                "-in",
                "leaf.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "1",
                "-extfile",
                "ext",
                "-out",
                "cert.pem",
            ],
        ];
        for step in steps {
            let made = Command::new("openssl")
                .args(step)
                .current_dir(d)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            if !made.is_ok_and(|s| s.success()) {
                eprintln!("openssl not available: skipped");
                return;
            }
        }
        std::fs::write(dir.path().join("hello.txt"), "hello\n").unwrap();
        let mut server = Command::new("python3")
            .args(["-c", SERVER])
            .arg(&cert)
            .arg(&key)
            .current_dir(dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(server.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = format!("https://127.0.0.1:{}/hello.txt", line.trim());
        let get = Request {
            method: "GET".into(),
            url,
            ..Request::default()
        };
        let unknown = send(&ClientOptions::default(), &get);
        let insecure = send(
            &ClientOptions {
                validate_certs: false,
                ..ClientOptions::default()
            },
            &get,
        );
        set_ca_file(ca.clone());
        // Another timeout: a client of its own, built with the CA file.
        let trusted = send(
            &ClientOptions {
                timeout: Duration::from_secs(11),
                ..ClientOptions::default()
            },
            &get,
        );
        let _ = server.kill();
        let _ = server.wait();
        assert!(unknown.is_err(), "an unknown CA must fail: {unknown:?}");
        assert_eq!(insecure.unwrap().body, b"hello\n");
        assert_eq!(trusted.unwrap().body, b"hello\n");
    }
}
