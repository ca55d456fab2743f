//! Reaching the remote: the HTTP client's options, the `ssh` command line, the TLS provider, and
//! the fetch of one branch.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Once;

use super::error::{chain, GitError, RemoteKind};
use super::{local_ref, tracking_ref, FetchOptions};

/// `http.ca_file` cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("http.ca_file {}: {problem}", path.display())]
pub struct CaFileError {
    pub path: PathBuf,
    #[source]
    pub problem: CaFileProblem,
}

/// The HTTP client's options cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum HttpOptionsError {
    #[error(transparent)]
    CaFile(#[from] CaFileError),
    #[error("HTTP options for {url}: {}", chain(source))]
    Options {
        url: String,
        #[source]
        source: gix::Error,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum CaFileProblem {
    #[error(transparent)]
    Read(#[from] std::io::Error),
    #[error(transparent)]
    Pem(#[from] reqwest::Error),
    #[error("no PEM certificate in it")]
    NoCertificate,
}

/// rustls needs a process-wide crypto provider; reqwest is built without one (`rustls-no-provider`)
/// so that *ring* is used and aws-lc-sys stays out of the build.
pub fn install_tls_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Err only means another provider is installed already: fine either way.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// The `ssh` command line (for `core.sshCommand` / `GIT_SSH_COMMAND`): never prompts, uses only the
/// given key and known_hosts when set.
pub fn ssh_command(opts: &FetchOptions) -> Result<String, shlex::QuoteError> {
    let mut cmd = String::from("ssh -o BatchMode=yes");
    if let Some(key) = &opts.ssh_key {
        cmd.push_str(&format!(
            " -i {} -o IdentitiesOnly=yes",
            shlex::try_quote(&key.to_string_lossy())?
        ));
    }
    if let Some(kh) = &opts.known_hosts {
        let option = format!("UserKnownHostsFile={}", kh.to_string_lossy());
        cmd.push_str(&format!(
            " -o {} -o StrictHostKeyChecking=yes",
            shlex::try_quote(&option)?
        ));
    }
    Ok(cmd)
}

pub(crate) type HttpOptions = gix::protocol::transport::client::blocking_io::http::Options;

/// The HTTP transport options for `url` when the default client would not do: `None` when there
/// is nothing to change (ssh/file URLs, or https:// without `http.ca_file`).
///
/// - `http.ca_file` with an http(s) URL: the reqwest client trusts the file's certificates too
///   (gix-transport's `configure_client` hook; gix's reqwest backend ignores `http.sslCAInfo`).
/// - plain `http://` otherwise: the client is built with an empty root store, because reqwest's
///   default (the platform verifier) fails to build at all on a host without CA certificates
///   ("No CA certificates were loaded from the system"), although no TLS is ever spoken.
pub(crate) fn http_options(
    repo: &gix::Repository,
    url: &str,
    opts: &FetchOptions,
) -> Result<Option<HttpOptions>, HttpOptionsError> {
    let plain = url.starts_with("http://");
    if !(plain || url.starts_with("https://")) {
        return Ok(None);
    }
    let configure: Box<
        gix::protocol::transport::client::blocking_io::http::reqwest::ConfigureClientFn,
    > = match &opts.http_ca_file {
        Some(ca) => {
            let bad = |problem: CaFileProblem| CaFileError {
                path: ca.clone(),
                problem,
            };
            let pem = std::fs::read(ca).map_err(|e| bad(e.into()))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| bad(e.into()))?;
            if certs.is_empty() {
                return Err(bad(CaFileProblem::NoCertificate).into());
            }
            Box::new(move |builder| Ok(builder.tls_certs_merge(certs.clone())))
        }
        None if plain => Box::new(|builder| Ok(builder.tls_certs_only(Vec::new()))),
        None => return Ok(None),
    };
    let mut http = repo
        .transport_options(url, None)
        .map_err(|source| HttpOptionsError::Options {
            url: url.to_string(),
            source,
        })?
        .and_then(|o| o.downcast::<HttpOptions>().ok())
        .map(|o| *o)
        .unwrap_or_default();
    let backend = gix::protocol::transport::client::blocking_io::http::reqwest::Options {
        configure_client: Some(configure),
        configure_request: None,
    };
    http.backend = Some(std::sync::Arc::new(std::sync::Mutex::new(backend)));
    Ok(Some(http))
}

/// Fetches `refs/heads/<branch>` of `url` into `refs/remotes/origin/<branch>` (forced: the caller
/// decides whether a non-fast-forward is acceptable).
pub(super) fn fetch_ref(
    repo: &gix::Repository,
    url: &str,
    branch: &str,
    opts: &FetchOptions,
    shallow: gix::remote::fetch::Shallow,
) -> Result<(), GitError> {
    use gix::remote::Direction;
    install_tls_provider();
    let err = |e: gix::Error| GitError::Fetch {
        url: url.to_string(),
        branch: branch.to_string(),
        kind: RemoteKind::of(&e, opts.http_credentials.is_some()),
        source: Box::new(e),
    };
    let spec = format!("+{}:{}", local_ref(branch), tracking_ref(branch));
    let remote = repo
        .remote_at(url)
        .map_err(err)?
        .with_refspecs([spec.as_str()], Direction::Fetch)
        .map_err(err)?
        .with_fetch_tags(gix::remote::fetch::Tags::None);
    let credentials = opts.http_credentials.clone();
    let http = http_options(repo, url, opts).map_err(|e| GitError::Fetch {
        url: url.to_string(),
        branch: branch.to_string(),
        kind: RemoteKind::Setup,
        source: Box::new(e),
    })?;
    let mut connection = remote
        .connect(Direction::Fetch)
        .map_err(err)?
        .with_credentials(configured_account(credentials));
    if let Some(http) = http {
        connection.set_transport_options(Box::new(http));
    }
    let prepare = connection
        .prepare_fetch(gix::progress::Discard, Default::default())
        .map_err(err)?;
    if prepare.ref_map().mappings.is_empty() {
        return Err(GitError::BranchNotFound {
            url: url.to_string(),
            branch: branch.to_string(),
        });
    }
    prepare
        .with_shallow(shallow)
        .receive(gix::progress::Discard, &AtomicBool::new(false))
        .map_err(err)?;
    Ok(())
}

/// The credentials callback of fetch and push: never prompt and never ask a credential helper,
/// answer with the configured account or nothing.
pub(crate) fn configured_account(
    credentials: Option<(String, String)>,
) -> impl FnMut(
    gix::credentials::helper::Action,
) -> gix::error::Result<Option<gix::credentials::protocol::Outcome>>
       + Clone {
    move |action| match (action, &credentials) {
        (gix::credentials::helper::Action::Get(ctx), Some((user, password))) => {
            Ok(Some(gix::credentials::protocol::Outcome {
                identity: gix::sec::identity::Account {
                    username: user.clone(),
                    password: password.clone(),
                    oauth_refresh_token: None,
                },
                next: ctx.into(),
            }))
        }
        _ => Ok(None),
    }
}
