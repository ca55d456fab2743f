//! Commit signature verification, in process and in pure Rust: no `ssh-keygen` or `gpg` at run time.
//!
//! The Git layer hands over what `gix::Commit::signature()` returns: the armored `gpgsig` header
//! value and the signed payload (the commit object without the `gpgsig` header), plus the
//! committer time. [`verify`] checks it against a [`TrustPolicy`]:
//!
//! - SSH signatures (`-----BEGIN SSH SIGNATURE-----`, git's `gpg.format=ssh`) against an OpenSSH
//!   `allowed_signers` file, the way `git verify-commit` does with `gpg.ssh.allowedSignersFile`:
//!   the signature namespace must be `git`, the key must be listed, the line's `namespaces=`
//!   must allow `git`, and its `valid-after`/`valid-before` window must contain the commit time.
//! - OpenPGP signatures (`-----BEGIN PGP SIGNATURE-----`) against public keys loaded from files.
//!
//! See the module [`allowed_signers`] for what of OpenSSH's file format is supported.

pub mod allowed_signers;
mod openpgp;
mod ssh;

#[cfg(test)]
mod tests;

use std::fmt;
use std::path::{Path, PathBuf};

pub use allowed_signers::AllowedSigners;
pub use openpgp::OpenPgpKey;

/// Which kind of signature a commit carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigFormat {
    /// `gpg.format=ssh`: an SSHSIG armored signature.
    Ssh,
    /// `gpg.format=openpgp` (git's default): an OpenPGP detached signature.
    OpenPgp,
}

impl fmt::Display for SigFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SigFormat::Ssh => "ssh",
            SigFormat::OpenPgp => "openpgp",
        })
    }
}

/// What signers the agent trusts and whether a signature is required.
#[derive(Debug, Clone)]
pub struct TrustPolicy {
    /// `true`: every commit must carry a good signature by a trusted key.
    pub require: bool,
    /// Trusted SSH keys, in OpenSSH's `allowed_signers` format.
    pub allowed_signers: Option<AllowedSigners>,
    /// Trusted OpenPGP keys (a key file may hold several; each is one entry here).
    pub openpgp_keys: Vec<OpenPgpKey>,
}

impl TrustPolicy {
    /// Load the trust roots from files.
    ///
    /// `openpgp_keys` are files with one or more OpenPGP public keys (ASCII-armored, as
    /// `gpg --export --armor` writes them, or binary). A policy that requires signatures but
    /// trusts no key at all is refused here ([`TrustError::NoTrustedKeys`]): it could only reject.
    pub fn load(
        allowed_signers: Option<&Path>,
        openpgp_keys: &[PathBuf],
        require: bool,
    ) -> Result<TrustPolicy, TrustError> {
        let allowed_signers = allowed_signers.map(AllowedSigners::load).transpose()?;
        let mut keys = Vec::new();
        for path in openpgp_keys {
            keys.extend(OpenPgpKey::load(path)?);
        }
        let policy = TrustPolicy {
            require,
            allowed_signers,
            openpgp_keys: keys,
        };
        if require && !policy.has_trusted_keys() {
            return Err(TrustError::NoTrustedKeys);
        }
        Ok(policy)
    }

    /// A policy that requires nothing and trusts nobody: unsigned commits are accepted, signed
    /// ones are not checked ([`Verdict::NotChecked`]).
    pub fn permissive() -> TrustPolicy {
        TrustPolicy {
            require: false,
            allowed_signers: None,
            openpgp_keys: Vec::new(),
        }
    }

    /// Whether any key at all is trusted (an allowed_signers file, even an empty one, counts).
    pub fn has_trusted_keys(&self) -> bool {
        self.allowed_signers.is_some() || !self.openpgp_keys.is_empty()
    }
}

/// What the Git layer knows about one commit.
#[derive(Debug, Clone, Copy)]
pub struct SignedCommit<'a> {
    /// The `gpgsig` header value, armored, continuation-line spaces removed (as gix returns it);
    /// `None` for an unsigned commit.
    pub signature: Option<&'a [u8]>,
    /// The commit object without its `gpgsig` header: the bytes git signed.
    pub payload: &'a [u8],
    /// The committer time, unix seconds. SSH validity windows are checked against it, as git does.
    pub commit_time: i64,
}

/// The outcome of a successful check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// A good signature by a trusted key.
    Trusted {
        /// SSH: the principals field of the matching allowed_signers line, as written
        /// (`admin@example.org`, or a pattern list). OpenPGP: the key's first user id.
        signer: String,
        /// SSH: the key fingerprint, `SHA256:...`. OpenPGP: the fingerprint of the key that made
        /// the signature (a signing subkey or the primary key), upper-case hex.
        key: String,
        format: SigFormat,
    },
    /// The commit is unsigned, and the policy does not require signatures.
    UnsignedAccepted,
    /// The commit is signed, but the policy neither requires signatures nor trusts any key, so
    /// there is nothing to check it against (signature checking is off). Without this, every
    /// commit signed by anyone (e.g. GitHub's web-flow key) would be refused on a host that never
    /// configured signing.
    NotChecked { format: SigFormat },
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Trusted {
                signer,
                key,
                format,
            } => write!(f, "good {format} signature by {signer} (key {key})"),
            Verdict::UnsignedAccepted => {
                f.write_str("commit is not signed (signatures not required)")
            }
            Verdict::NotChecked { format } => write!(
                f,
                "{format} signature not checked (no trusted keys configured)"
            ),
        }
    }
}

/// Why a commit is not trusted, or why the trust configuration cannot be loaded. The messages
/// are meant for a human reading a status document.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error("commit is not signed")]
    Unsigned,
    /// The signature is good or bad, but either way its key is not trusted.
    #[error("key {fingerprint} is not in {trusted_in}")]
    UnknownKey {
        fingerprint: String,
        /// Where the key was looked for: "allowed_signers (/etc/...)" or "the trusted OpenPGP keys".
        trusted_in: String,
    },
    #[error("bad signature: {0}")]
    BadSignature(String),
    #[error("key {fingerprint} of {principal} expired at {}, before the commit time {} ({at})", fmt_time(*.valid_before), fmt_time(*.commit_time))]
    Expired {
        principal: String,
        fingerprint: String,
        valid_before: i64,
        commit_time: i64,
        /// Where the validity window comes from (`file:line`, or "OpenPGP key expiry").
        at: String,
    },
    #[error("key {fingerprint} of {principal} is valid only from {}, after the commit time {} ({at})", fmt_time(*.valid_after), fmt_time(*.commit_time))]
    NotYetValid {
        principal: String,
        fingerprint: String,
        valid_after: i64,
        commit_time: i64,
        at: String,
    },
    /// The signature was made for another purpose (`ssh-keygen -Y sign -n file`), not for git.
    #[error("signature namespace is \"{found}\", not \"{expected}\"")]
    WrongNamespace { found: String, expected: String },
    /// The key is listed, but its `namespaces=` option does not allow `git`.
    #[error("key {fingerprint} of {principal} may not sign namespace \"git\" (namespaces=\"{namespaces}\" at {at})")]
    NamespaceNotAllowed {
        principal: String,
        fingerprint: String,
        namespaces: String,
        at: String,
    },
    #[error("OpenPGP key {fingerprint} ({signer}) is revoked")]
    Revoked { signer: String, fingerprint: String },
    /// A syntax error in a trust file, with its 1-based line number.
    #[error("{}:{line}: {source}", file.display())]
    Parse {
        file: PathBuf,
        line: usize,
        #[source]
        source: allowed_signers::SyntaxError,
    },
    /// A key file that cannot be used (no line numbers in binary or armored key data).
    #[error("{}: {msg}", file.display())]
    KeyFile { file: PathBuf, msg: String },
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("unsupported signature format: {0}")]
    UnsupportedFormat(String),
    #[error("signatures are required, but no allowed_signers file or OpenPGP key is configured")]
    NoTrustedKeys,
}

/// Check one commit against the policy.
///
/// | commit | `require: false` | `require: true` |
/// |---|---|---|
/// | unsigned | `Ok(UnsignedAccepted)` | `Err(Unsigned)` |
/// | good signature, trusted key | `Ok(Trusted)` | `Ok(Trusted)` |
/// | signed, policy trusts no key at all | `Ok(NotChecked)` | (refused by [`TrustPolicy::load`]) |
/// | unknown key, bad signature, expired, wrong namespace, ... | `Err(..)` | `Err(..)` |
///
/// With `require: false`, a *signed* commit is still checked as soon as any key is trusted: a
/// signature that is bad, or made by a key the operator did not list, is an error, never
/// accepted. `require: false` relaxes "must be signed", not "a signature must be right": a
/// commit that claims a signature and fails the check is more suspicious than an unsigned one,
/// and accepting it would make the outcome depend on whether an attacker bothered to sign.
pub fn verify(policy: &TrustPolicy, commit: &SignedCommit) -> Result<Verdict, TrustError> {
    let Some(signature) = commit.signature else {
        return if policy.require {
            Err(TrustError::Unsigned)
        } else {
            Ok(Verdict::UnsignedAccepted)
        };
    };
    let format = detect_format(signature)?;
    if !policy.require && !policy.has_trusted_keys() {
        return Ok(Verdict::NotChecked { format });
    }
    match format {
        SigFormat::Ssh => ssh::verify(
            policy.allowed_signers.as_ref(),
            signature,
            commit.payload,
            commit.commit_time,
        ),
        SigFormat::OpenPgp => openpgp::verify(
            &policy.openpgp_keys,
            signature,
            commit.payload,
            commit.commit_time,
        ),
    }
}

fn detect_format(signature: &[u8]) -> Result<SigFormat, TrustError> {
    let trimmed = signature.trim_ascii_start();
    if trimmed.starts_with(b"-----BEGIN SSH SIGNATURE-----") {
        Ok(SigFormat::Ssh)
    } else if trimmed.starts_with(b"-----BEGIN PGP SIGNATURE-----") {
        Ok(SigFormat::OpenPgp)
    } else if trimmed.starts_with(b"-----BEGIN SIGNED MESSAGE-----") {
        Err(TrustError::UnsupportedFormat(
            "X.509 (gpgsm, gpg.format=x509) signatures are not supported".into(),
        ))
    } else {
        let first = trimmed.split(|&b| b == b'\n').next().unwrap_or_default();
        Err(TrustError::UnsupportedFormat(format!(
            "signature starts with {:?}, expected an SSH or OpenPGP armor header",
            String::from_utf8_lossy(&first[..first.len().min(40)])
        )))
    }
}

/// Unix seconds as RFC 3339 UTC, for messages.
pub(crate) fn fmt_time(secs: i64) -> String {
    match jiff::Timestamp::from_second(secs) {
        Ok(t) => t.to_string(),
        Err(_) => format!("@{secs}"),
    }
}
