//! SSH signatures (SSHSIG, `gpg.format=ssh`) checked against an `allowed_signers` file, with the
//! outcome `git verify-commit` gets from `ssh-keygen -Y find-principals` + `-Y verify`.

use ssh_key::{HashAlg, PublicKey, SshSig};

use super::allowed_signers::{match_pattern_list, AllowedSigners, SignerEntry};
use super::{SigFormat, TrustError, Verdict};

/// The SSHSIG namespace git signs commits and tags in.
const NAMESPACE: &str = "git";

pub(super) fn verify(
    signers: Option<&AllowedSigners>,
    armored: &[u8],
    payload: &[u8],
    commit_time: i64,
) -> Result<Verdict, TrustError> {
    let sig = SshSig::from_pem(armored)
        .map_err(|e| TrustError::BadSignature(format!("cannot parse the SSH signature: {e}")))?;
    if sig.namespace() != NAMESPACE {
        return Err(TrustError::WrongNamespace {
            found: sig.namespace().to_string(),
            expected: NAMESPACE.to_string(),
        });
    }
    let fingerprint = sig.public_key().fingerprint(HashAlg::Sha256).to_string();
    // The cryptographic check first: a bad signature is reported as such whatever the key.
    PublicKey::from(sig.public_key().clone())
        .verify(NAMESPACE, payload, &sig)
        .map_err(|e| {
            TrustError::BadSignature(format!(
                "SSH signature by key {fingerprint} does not match the commit: {e}"
            ))
        })?;

    let Some(signers) = signers else {
        return Err(TrustError::UnknownKey {
            fingerprint,
            trusted_in: "allowed_signers (no allowed_signers file is configured)".into(),
        });
    };
    let mut first_refusal = None;
    for entry in signers
        .entries()
        .iter()
        .filter(|e| e.key.key_data() == sig.public_key())
    {
        match refusal(entry, signers, &fingerprint, commit_time) {
            None => {
                return Ok(Verdict::Trusted {
                    signer: entry.principals.clone(),
                    key: fingerprint,
                    format: SigFormat::Ssh,
                })
            }
            Some(r) => {
                first_refusal.get_or_insert(r);
            }
        }
    }
    Err(first_refusal.unwrap_or_else(|| TrustError::UnknownKey {
        fingerprint,
        trusted_in: format!("allowed_signers ({})", signers.path().display()),
    }))
}

/// Why this line, which lists the signing key, does not allow this commit; `None` if it does.
fn refusal(
    entry: &SignerEntry,
    signers: &AllowedSigners,
    fingerprint: &str,
    commit_time: i64,
) -> Option<TrustError> {
    let at = format!("{}:{}", signers.path().display(), entry.line);
    let principal = entry.principals.clone();
    let fingerprint = fingerprint.to_string();
    if let Some(ns) = &entry.namespaces {
        if !match_pattern_list(NAMESPACE, ns) {
            return Some(TrustError::NamespaceNotAllowed {
                principal,
                fingerprint,
                namespaces: ns.clone(),
                at,
            });
        }
    }
    if let Some(valid_after) = entry.valid_after.filter(|&t| commit_time < t) {
        return Some(TrustError::NotYetValid {
            principal,
            fingerprint,
            valid_after,
            commit_time,
            at,
        });
    }
    if let Some(valid_before) = entry.valid_before.filter(|&t| commit_time > t) {
        return Some(TrustError::Expired {
            principal,
            fingerprint,
            valid_before,
            commit_time,
            at,
        });
    }
    None
}
