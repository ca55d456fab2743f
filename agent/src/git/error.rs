//! The Git layer's errors: what failed, with its source kept (gix nests its causes), and a kind
//! the caller acts on ([`GitError::is_spurious`]: worth retrying soon) and that says what an
//! authentication or TLS failure means for the agent's configuration.

use std::error::Error;
use std::path::PathBuf;

use gix::ObjectId;

/// The source of a [`GitError`]: gix's, the file system's, or the agent's own.
pub type Cause = Box<dyn Error + Send + Sync + 'static>;

#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("git repository {}: {}", dir.display(), chain(&**source))]
    Open {
        dir: PathBuf,
        #[source]
        source: Cause,
    },
    #[error("branch `{branch}` not found at {url}")]
    BranchNotFound { url: String, branch: String },
    #[error("invalid branch name `{branch}`: {source}")]
    InvalidBranch {
        branch: String,
        #[source]
        source: Cause,
    },
    #[error("fetching `{branch}` from {url}: {}", kind.explain(chain(&**source)))]
    Fetch {
        url: String,
        branch: String,
        kind: RemoteKind,
        #[source]
        source: Cause,
    },
    #[error("{context}: {}", chain(&**source))]
    Repo {
        context: String,
        #[source]
        source: Cause,
    },
    #[error("commit {id} is not in the local repository")]
    MissingCommit { id: ObjectId },
    #[error("pushing `{branch}` to {url}: {source}")]
    Push {
        url: String,
        branch: String,
        #[source]
        source: PushError,
    },
    /// The remote branch moved again after the status commit was rebased on it.
    #[error(
        "pushing `{branch}` to {url}: the remote branch moved again while retrying ({reason})"
    )]
    PushConflict {
        url: String,
        branch: String,
        reason: String,
    },
}

impl GitError {
    /// Whether trying again soon may work: the server could not be reached or the connection
    /// broke. Refusals, authentication, configuration and local errors need someone to act.
    pub fn is_spurious(&self) -> bool {
        match self {
            GitError::Fetch { kind, .. } => *kind == RemoteKind::Transport,
            GitError::Push { source, .. } => source.is_spurious(),
            GitError::PushConflict { .. } => true,
            _ => false,
        }
    }
}

/// What went wrong between the agent and the Git server, as far as the agent can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemoteKind {
    /// The server asks for credentials (HTTP 401) and none are configured.
    NoCredentials,
    /// Credentials would go over plain `http://`: refused before sending.
    ClearTextCredentials,
    /// The HTTPS client has no CA certificate to verify with (no system store, no `http.ca_file`).
    NoCaCertificates,
    /// The HTTP client's options cannot be set up (`http.ca_file` cannot be used).
    Setup,
    /// Anything else on the way: unreachable, refused, reset, rejected credentials, a broken
    /// answer.
    Transport,
}

impl RemoteKind {
    /// The kind of a transport error (`credentials`: whether credentials were configured).
    pub(crate) fn of(err: &(dyn Error + 'static), credentials: bool) -> RemoteKind {
        use gix::protocol::transport::client::Error as ClientError;
        let mut unauthenticated = false;
        for e in causes(err) {
            if let Some(ClientError::AuthenticationRefused(_)) = e.downcast_ref::<ClientError>() {
                return RemoteKind::ClearTextCredentials;
            }
            if let Some(rustls::Error::General(_)) = e.downcast_ref::<rustls::Error>() {
                // The only general error before any handshake: the platform verifier found
                // no root certificate to build on.
                return RemoteKind::NoCaCertificates;
            }
            if let Some(g) = e.downcast_ref::<gix::Error>() {
                unauthenticated |= g.is_unauthenticated();
            }
        }
        if unauthenticated && !credentials {
            RemoteKind::NoCredentials
        } else {
            RemoteKind::Transport
        }
    }

    /// The message for `cause`: what it means for the agent's configuration (gix's messages
    /// speak of credential helpers, which the agent never uses).
    pub(crate) fn explain(self, cause: String) -> String {
        match self {
            RemoteKind::NoCredentials => format!(
                "the server requires authentication (HTTP 401) and no credentials are configured \
                 (`http.credentials_file`) [{cause}]"
            ),
            RemoteKind::ClearTextCredentials => {
                format!("{cause} (HTTP credentials are only sent over https://)")
            }
            RemoteKind::NoCaCertificates => format!(
                "{cause} (https:// needs the system's CA certificates: install ca-certificates, \
                 or name a CA file in `http.ca_file`)"
            ),
            RemoteKind::Setup | RemoteKind::Transport => cause,
        }
    }
}

/// Why a status push did not go through.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// Preparing it here: the local repository, the URL, the objects, the pack.
    #[error("{step}: {}", chain(&**source))]
    Local {
        step: String,
        #[source]
        source: Cause,
    },
    /// Reaching the server or talking to it.
    #[error("{}", kind.explain(format!("{step}: {}", chain(&**source))))]
    Remote {
        step: &'static str,
        kind: RemoteKind,
        #[source]
        source: Cause,
    },
    /// The server answered and refused it (a hook, a policy, a failed unpack), with what it
    /// said on the side.
    #[error("{reason}{}", remote_said(said))]
    Refused { reason: String, said: Vec<String> },
    #[error(transparent)]
    Http(#[from] super::transport::HttpOptionsError),
    /// `git push` (the tests' comparison) failed without a report.
    #[error("git push failed ({status}): {stderr}")]
    Cli { status: String, stderr: String },
}

impl PushError {
    pub fn is_spurious(&self) -> bool {
        matches!(
            self,
            PushError::Remote {
                kind: RemoteKind::Transport,
                ..
            }
        )
    }
}

fn remote_said(said: &[String]) -> String {
    let said: Vec<_> = said.iter().filter(|m| !m.is_empty()).collect();
    if said.is_empty() {
        String::new()
    } else {
        format!(" (remote: {said:?})")
    }
}

/// `err` and its sources, gix's nested ones included.
fn causes<'a>(
    err: &'a (dyn Error + 'static),
) -> impl Iterator<Item = &'a (dyn Error + 'static)> + 'a {
    let mut stack = vec![err];
    std::iter::from_fn(move || {
        let e = stack.pop()?;
        if let Some(g) = e.downcast_ref::<gix::Error>() {
            // The errors gix nests, not the wrapper itself again.
            let me = e as *const dyn Error as *const ();
            stack.extend(
                g.iter_errors()
                    .filter(|inner| *inner as *const dyn Error as *const () != me),
            );
        }
        stack.extend(e.source());
        Some(e)
    })
    // A bound, should a cause ever list itself.
    .take(256)
}

/// The whole cause chain of an error in one line (gix errors nest their causes).
pub(crate) fn chain(err: &(dyn Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        let msg = e.to_string();
        if !msg.is_empty() && !out.contains(&msg) {
            out.push_str(": ");
            out.push_str(&msg);
        }
        cur = e.source();
    }
    out
}

/// Maps a gix error to [`GitError::Repo`] with what was being done.
pub(crate) fn repo_err<E: Error + Send + Sync + 'static>(
    context: impl Into<String>,
) -> impl FnOnce(E) -> GitError {
    let context = context.into();
    move |e| GitError::Repo {
        context,
        source: Box::new(e),
    }
}

#[cfg(test)]
mod tests {
    use gix::protocol::transport::client::Error as ClientError;

    use super::*;

    fn fetch(kind: RemoteKind) -> GitError {
        GitError::Fetch {
            url: "https://git.example.org/fleet.git".into(),
            branch: "hosts/web-01".into(),
            kind,
            source: "cause".into(),
        }
    }

    #[test]
    fn a_failed_fetch_has_a_kind_that_says_what_to_fix_and_whether_to_retry() {
        let clear = gix::Error::from_error(ClientError::AuthenticationRefused("clear text"));
        assert_eq!(
            RemoteKind::of(&clear, true),
            RemoteKind::ClearTextCredentials
        );
        let unauthenticated =
            || gix::error::unauthenticated("no credentials").unauthenticated_error();
        assert_eq!(
            RemoteKind::of(&unauthenticated(), false),
            RemoteKind::NoCredentials
        );
        // Configured and rejected: gix's message says so, nothing to add.
        assert_eq!(
            RemoteKind::of(&unauthenticated(), true),
            RemoteKind::Transport
        );
        let no_roots = rustls::Error::General("no roots".into());
        assert_eq!(
            RemoteKind::of(&gix::Error::from_error(no_roots), false),
            RemoteKind::NoCaCertificates
        );
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(RemoteKind::of(&refused, false), RemoteKind::Transport);

        assert!(fetch(RemoteKind::Transport).is_spurious());
        for kind in [
            RemoteKind::NoCredentials,
            RemoteKind::ClearTextCredentials,
            RemoteKind::NoCaCertificates,
            RemoteKind::Setup,
        ] {
            assert!(!fetch(kind).is_spurious(), "{kind:?}");
        }
        let missing = GitError::BranchNotFound {
            url: "u".into(),
            branch: "b".into(),
        };
        assert!(!missing.is_spurious());
        assert!(fetch(RemoteKind::NoCredentials)
            .to_string()
            .contains("no credentials are configured (`http.credentials_file`) [cause]"));
        assert!(fetch(RemoteKind::NoCaCertificates)
            .to_string()
            .contains("install ca-certificates"));
    }
}
