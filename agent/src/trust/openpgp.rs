//! OpenPGP detached signatures (git's default `gpg.format=openpgp`), checked with rpgp against
//! public keys loaded from files.
//!
//! A key is usable when it has a user id with a valid self-signature. The signature may be made
//! by the primary key or by a subkey whose newest valid binding signature has the "sign" flag
//! (with its back-signature). A key with a valid revocation signature is refused. Key expiry is
//! checked against the signature's creation time (the commit time if it has none), so a commit
//! signed while the key was valid stays valid; gpg, and so `git verify-commit`, checks expiry
//! against the current time instead.

use std::path::{Path, PathBuf};

use pgp::composed::{Deserializable, DetachedSignature, SignedPublicKey};
use pgp::packet::{PublicSubkey, Signature, SignatureType};
use pgp::types::{KeyDetails, Tag};

use super::{SigFormat, TrustError, Verdict};

/// A trusted OpenPGP public key, with what its self-signatures say about it.
#[derive(Debug, Clone)]
pub struct OpenPgpKey {
    /// The file it was loaded from.
    pub path: PathBuf,
    /// Primary key fingerprint, upper-case hex.
    pub fingerprint: String,
    /// The first user id with a valid self-signature.
    pub user_id: String,
    key: SignedPublicKey,
    /// Unix seconds after which the primary key has expired.
    expires: Option<i64>,
    revoked: bool,
    /// Subkeys allowed to sign, with their expiry.
    signing_subkeys: Vec<(PublicSubkey, Option<i64>)>,
}

impl OpenPgpKey {
    /// Load every public key in a file (armored or binary).
    pub fn load(path: &Path) -> Result<Vec<OpenPgpKey>, TrustError> {
        let data = std::fs::read(path).map_err(|source| TrustError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&data, path)
    }

    /// Parse the keys in `data`; `path` names the file in errors.
    pub fn parse(data: &[u8], path: &Path) -> Result<Vec<OpenPgpKey>, TrustError> {
        let err = |msg: String| TrustError::KeyFile {
            file: path.to_path_buf(),
            msg,
        };
        let armored = data.trim_ascii_start().starts_with(b"-----BEGIN");
        let keys: Box<dyn Iterator<Item = pgp::errors::Result<SignedPublicKey>>> = if armored {
            SignedPublicKey::from_armor_many(data)
                .map_err(|e| err(format!("not an armored OpenPGP public key: {e}")))?
                .0
        } else {
            SignedPublicKey::from_bytes_many(data)
                .map_err(|e| err(format!("not an OpenPGP public key: {e}")))?
        };
        let mut out = Vec::new();
        for key in keys {
            let key = key.map_err(|e| err(format!("invalid OpenPGP public key: {e}")))?;
            out.push(Self::from_key(key, path)?);
        }
        if out.is_empty() {
            return Err(err("no OpenPGP public key in the file".into()));
        }
        Ok(out)
    }

    fn from_key(key: SignedPublicKey, path: &Path) -> Result<OpenPgpKey, TrustError> {
        let primary = &key.primary_key;
        let fingerprint = format!("{:X}", primary.fingerprint());
        let created = i64::from(primary.created_at().as_secs());

        // Newest valid self-certification per user id; third-party certifications fail to verify
        // with the key's own primary key and are ignored.
        let mut user_id = None;
        let mut newest_self_sig: Option<&Signature> = None;
        for user in &key.details.users {
            let valid = user.signatures.iter().filter(|s| {
                s.verify_certification(primary, Tag::UserId, &user.id)
                    .is_ok()
            });
            for sig in valid {
                if user_id.is_none() {
                    user_id = Some(String::from_utf8_lossy(user.id.id()).into_owned());
                }
                if newest_self_sig.is_none_or(|n| created_secs(sig) > created_secs(n)) {
                    newest_self_sig = Some(sig);
                }
            }
        }
        for sig in &key.details.direct_signatures {
            if sig.verify_key(primary).is_ok()
                && newest_self_sig.is_none_or(|n| created_secs(sig) > created_secs(n))
            {
                newest_self_sig = Some(sig);
            }
        }
        let Some(self_sig) = newest_self_sig else {
            return Err(TrustError::KeyFile {
                file: path.to_path_buf(),
                msg: format!("OpenPGP key {fingerprint} has no valid self-signature"),
            });
        };
        let user_id = user_id.unwrap_or_else(|| format!("key {fingerprint}"));
        let expires = expiry(created, self_sig);
        let revoked = key
            .details
            .revocation_signatures
            .iter()
            .any(|s| s.verify_key(primary).is_ok());

        let mut signing_subkeys = Vec::new();
        for sub in &key.public_subkeys {
            let sub_created = i64::from(sub.key.created_at().as_secs());
            let valid = |s: &&Signature| s.verify_subkey_binding(primary, &sub.key).is_ok();
            let sub_revoked = sub
                .signatures
                .iter()
                .filter(|s| s.typ() == Some(SignatureType::SubkeyRevocation))
                .any(|s| valid(&s));
            let binding = sub
                .signatures
                .iter()
                .filter(|s| s.typ() == Some(SignatureType::SubkeyBinding))
                .filter(valid)
                .max_by_key(|s| created_secs(s));
            let Some(binding) = binding else { continue };
            if sub_revoked || !binding.key_flags().sign() {
                continue;
            }
            let back_ok = binding
                .embedded_signature()
                .is_some_and(|b| b.verify_primary_key_binding(&sub.key, primary).is_ok());
            if back_ok {
                signing_subkeys.push((sub.key.clone(), expiry(sub_created, binding)));
            }
        }

        Ok(OpenPgpKey {
            path: path.to_path_buf(),
            fingerprint,
            user_id,
            expires,
            revoked,
            signing_subkeys,
            key,
        })
    }
}

fn created_secs(sig: &Signature) -> i64 {
    sig.created().map_or(0, |t| i64::from(t.as_secs()))
}

/// Expiry of a key created at `created`, from a self-signature's key-expiration subpacket.
fn expiry(created: i64, sig: &Signature) -> Option<i64> {
    sig.key_expiration_time()
        .map(|d| i64::from(d.as_secs()))
        .filter(|&d| d > 0)
        .map(|d| created + d)
}

pub(super) fn verify(
    keys: &[OpenPgpKey],
    armored: &[u8],
    payload: &[u8],
    commit_time: i64,
) -> Result<Verdict, TrustError> {
    let text = std::str::from_utf8(armored)
        .map_err(|_| TrustError::BadSignature("OpenPGP signature is not ASCII armor".into()))?;
    let (sig, _) = DetachedSignature::from_string(text).map_err(|e| {
        TrustError::BadSignature(format!("cannot parse the OpenPGP signature: {e}"))
    })?;
    let sig = sig.signature;
    if !matches!(sig.typ(), Some(SignatureType::Binary | SignatureType::Text)) {
        return Err(TrustError::BadSignature(format!(
            "OpenPGP signature of type {:?} is not a signature over data",
            sig.typ()
        )));
    }
    let issuer = issuer_name(&sig);
    let sig_time = sig
        .created()
        .map_or(commit_time, |t| i64::from(t.as_secs()));

    for key in keys {
        let primary = &key.key.primary_key;
        let mut candidates: Vec<(&dyn VerifyTarget, Option<i64>, i64)> = Vec::new();
        if issued_by(&sig, primary) {
            candidates.push((
                primary,
                key.expires,
                i64::from(primary.created_at().as_secs()),
            ));
        }
        for (sub, sub_expires) in &key.signing_subkeys {
            if issued_by(&sig, sub) {
                // A subkey is no longer valid than its primary key.
                let exp = match (key.expires, *sub_expires) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                candidates.push((sub, exp, i64::from(sub.created_at().as_secs())));
            }
        }
        let mut bad = None;
        for (signing_key, expires, created) in candidates {
            let fingerprint = signing_key.fingerprint_hex();
            if let Err(e) = signing_key.verify_data(&sig, payload) {
                bad.get_or_insert(TrustError::BadSignature(format!(
                    "OpenPGP signature by key {fingerprint} ({}) does not match the commit: {e}",
                    key.user_id
                )));
                continue;
            }
            if key.revoked {
                return Err(TrustError::Revoked {
                    signer: key.user_id.clone(),
                    fingerprint: key.fingerprint.clone(),
                });
            }
            if sig_time < created {
                return Err(TrustError::NotYetValid {
                    principal: key.user_id.clone(),
                    fingerprint,
                    valid_after: created,
                    commit_time: sig_time,
                    at: "OpenPGP key creation time".into(),
                });
            }
            if let Some(exp) = expires.filter(|&e| sig_time > e) {
                return Err(TrustError::Expired {
                    principal: key.user_id.clone(),
                    fingerprint,
                    valid_before: exp,
                    commit_time: sig_time,
                    at: "OpenPGP key expiry".into(),
                });
            }
            return Ok(Verdict::Trusted {
                signer: key.user_id.clone(),
                key: fingerprint,
                format: SigFormat::OpenPgp,
            });
        }
        if let Some(bad) = bad {
            return Err(bad);
        }
    }
    Err(TrustError::UnknownKey {
        fingerprint: issuer,
        trusted_in: if keys.is_empty() {
            "the trusted OpenPGP keys (none are configured)".into()
        } else {
            "the trusted OpenPGP keys".into()
        },
    })
}

/// The primary key and subkeys, seen the same way.
trait VerifyTarget {
    fn fingerprint_hex(&self) -> String;
    fn verify_data(&self, sig: &Signature, payload: &[u8]) -> pgp::errors::Result<()>;
}

impl<K: pgp::types::VerifyingKey> VerifyTarget for K {
    fn fingerprint_hex(&self) -> String {
        format!("{:X}", self.fingerprint())
    }
    fn verify_data(&self, sig: &Signature, payload: &[u8]) -> pgp::errors::Result<()> {
        sig.verify(self, payload)
    }
}

/// Whether the signature names `key` as its issuer (by fingerprint, or by the legacy key id).
fn issued_by(sig: &Signature, key: &impl KeyDetails) -> bool {
    let fp = key.fingerprint();
    let id = key.legacy_key_id();
    sig.issuer_fingerprint().into_iter().any(|f| *f == fp)
        || sig.issuer_key_id().into_iter().any(|k| *k == id)
}

/// How to name the signing key in an "unknown key" message.
fn issuer_name(sig: &Signature) -> String {
    if let Some(fp) = sig.issuer_fingerprint().first() {
        format!("{fp:X}")
    } else if let Some(id) = sig.issuer_key_id().first() {
        format!("{}", id).to_uppercase()
    } else {
        "(signature names no issuer)".into()
    }
}
