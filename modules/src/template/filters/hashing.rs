//! Ansible's hashing filters: `hash`, `checksum`/`sha1`, `md5`, `to_uuid`, and
//! `password_hash` (SHA-512/SHA-256 crypt and MD5 crypt as passlib computes them for
//! ansible-core: without `rounds`, 656000 for sha512 and 535000 for sha256; without `salt`, a
//! random one, so the result changes on every run, as in Ansible).

use md5::Md5;
use minijinja::value::{Kwargs, Rest};
use minijinja::{Error, Value};
use sha1::Sha1;
use sha2::{Digest, Sha224, Sha256, Sha384, Sha512};

use super::{check_defined, err, Params};
use crate::template::pyrepr::py_str;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn digest_hex(kind: &str, data: &[u8]) -> Result<String, Error> {
    Ok(match kind {
        "md5" => hex(&Md5::digest(data)),
        "sha1" => hex(&Sha1::digest(data)),
        "sha224" => hex(&Sha224::digest(data)),
        "sha256" => hex(&Sha256::digest(data)),
        "sha384" => hex(&Sha384::digest(data)),
        "sha512" => hex(&Sha512::digest(data)),
        other => {
            return Err(err(format!(
                "hash: the hash type '{other}' is not supported (md5, sha1, sha224, sha256, \
                 sha384, sha512)"
            )))
        }
    })
}

pub(super) fn hash(value: &Value, kind: Option<String>) -> Result<Value, Error> {
    check_defined(value, "hash")?;
    let kind = kind.unwrap_or_else(|| "sha1".into());
    Ok(Value::from(digest_hex(&kind, py_str(value).as_bytes())?))
}

pub(super) fn checksum(value: &Value) -> Result<Value, Error> {
    check_defined(value, "checksum")?;
    Ok(Value::from(hex(&Sha1::digest(py_str(value).as_bytes()))))
}

pub(super) fn md5(value: &Value) -> Result<Value, Error> {
    check_defined(value, "md5")?;
    Ok(Value::from(hex(&Md5::digest(py_str(value).as_bytes()))))
}

/// ansible-core's `UUID_NAMESPACE_ANSIBLE`.
const NAMESPACE_ANSIBLE: &str = "361E6D51-FAEC-444A-9079-341386DA8E2E";

/// Python's `uuid.UUID(text)`: 32 hex digits, hyphens, braces and `urn:uuid:` allowed.
fn parse_uuid(text: &str) -> Option<[u8; 16]> {
    let t = text.trim_start_matches("urn:").trim_start_matches("uuid:");
    let t: String = t
        .trim_matches(['{', '}'])
        .chars()
        .filter(|c| *c != '-')
        .collect();
    if t.len() != 32 || !t.is_ascii() {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&t[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

pub(super) fn to_uuid(value: &Value, args: Rest<Value>, kwargs: Kwargs) -> Result<Value, Error> {
    let p = Params::new("to_uuid", &["namespace"], &args, &kwargs)?;
    check_defined(value, "to_uuid")?;
    let ns = p.str(0).unwrap_or_else(|| NAMESPACE_ANSIBLE.into());
    let ns_bytes = parse_uuid(&ns).ok_or_else(|| {
        err(format!(
            "Invalid value '{ns}' for 'namespace': badly formed hexadecimal UUID string"
        ))
    })?;
    let mut h = Sha1::new();
    h.update(ns_bytes);
    h.update(py_str(value).as_bytes());
    let d = h.finalize();
    let mut u = [0u8; 16];
    u.copy_from_slice(&d[..16]);
    u[6] = (u[6] & 0x0f) | 0x50;
    u[8] = (u[8] & 0x3f) | 0x80;
    let x = hex(&u);
    Ok(Value::from(format!(
        "{}-{}-{}-{}-{}",
        &x[..8],
        &x[8..12],
        &x[12..16],
        &x[16..20],
        &x[20..]
    )))
}

const ITOA64: &[u8] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

fn b64_from_24bit(out: &mut String, b2: u8, b1: u8, b0: u8, n: usize) {
    let mut w = ((b2 as u32) << 16) | ((b1 as u32) << 8) | b0 as u32;
    for _ in 0..n {
        out.push(ITOA64[(w & 0x3f) as usize] as char);
        w >>= 6;
    }
}

/// Repeats `block` to `len` bytes.
fn repeat_to(block: &[u8], len: usize) -> Vec<u8> {
    block.iter().copied().cycle().take(len).collect()
}

/// Ulrich Drepper's SHA-crypt (`$5$`, `$6$`): the digest after `rounds` rounds.
fn sha_crypt_digest<D: Digest + Clone>(pw: &[u8], salt: &[u8], rounds: u32) -> Vec<u8> {
    let size = <D as Digest>::output_size();
    let b = D::new()
        .chain_update(pw)
        .chain_update(salt)
        .chain_update(pw)
        .finalize();
    let mut a = D::new().chain_update(pw).chain_update(salt);
    let mut cnt = pw.len();
    while cnt > size {
        a.update(&b);
        cnt -= size;
    }
    a.update(&b[..cnt]);
    let mut cnt = pw.len();
    while cnt > 0 {
        if cnt & 1 == 1 {
            a.update(&b);
        } else {
            a.update(pw);
        }
        cnt >>= 1;
    }
    let a = a.finalize().to_vec();
    let mut dp = D::new();
    for _ in 0..pw.len() {
        dp.update(pw);
    }
    let p = repeat_to(&dp.finalize(), pw.len());
    let mut ds = D::new();
    for _ in 0..16 + a[0] as usize {
        ds.update(salt);
    }
    let s = repeat_to(&ds.finalize(), salt.len());
    let mut c = a;
    for i in 0..rounds {
        let mut ctx = D::new();
        if i & 1 == 1 {
            ctx.update(&p);
        } else {
            ctx.update(&c);
        }
        if i % 3 != 0 {
            ctx.update(&s);
        }
        if i % 7 != 0 {
            ctx.update(&p);
        }
        if i & 1 == 1 {
            ctx.update(&c);
        } else {
            ctx.update(&p);
        }
        c = ctx.finalize().to_vec();
    }
    c
}

const SHA512_ORDER: [(usize, usize, usize); 21] = [
    (0, 21, 42),
    (22, 43, 1),
    (44, 2, 23),
    (3, 24, 45),
    (25, 46, 4),
    (47, 5, 26),
    (6, 27, 48),
    (28, 49, 7),
    (50, 8, 29),
    (9, 30, 51),
    (31, 52, 10),
    (53, 11, 32),
    (12, 33, 54),
    (34, 55, 13),
    (56, 14, 35),
    (15, 36, 57),
    (37, 58, 16),
    (59, 17, 38),
    (18, 39, 60),
    (40, 61, 19),
    (62, 20, 41),
];

const SHA256_ORDER: [(usize, usize, usize); 10] = [
    (0, 10, 20),
    (21, 1, 11),
    (12, 22, 2),
    (3, 13, 23),
    (24, 4, 14),
    (15, 25, 5),
    (6, 16, 26),
    (27, 7, 17),
    (18, 28, 8),
    (9, 19, 29),
];

fn sha_crypt(sha512: bool, pw: &[u8], salt: &str, rounds: u32) -> String {
    let c = if sha512 {
        sha_crypt_digest::<Sha512>(pw, salt.as_bytes(), rounds)
    } else {
        sha_crypt_digest::<Sha256>(pw, salt.as_bytes(), rounds)
    };
    let mut out = String::from(if sha512 { "$6$" } else { "$5$" });
    // passlib leaves the default 5000 rounds implicit
    if rounds != 5000 {
        out.push_str(&format!("rounds={rounds}$"));
    }
    out.push_str(salt);
    out.push('$');
    if sha512 {
        for (x, y, z) in SHA512_ORDER {
            b64_from_24bit(&mut out, c[x], c[y], c[z], 4);
        }
        b64_from_24bit(&mut out, 0, 0, c[63], 2);
    } else {
        for (x, y, z) in SHA256_ORDER {
            b64_from_24bit(&mut out, c[x], c[y], c[z], 4);
        }
        b64_from_24bit(&mut out, 0, c[31], c[30], 3);
    }
    out
}

/// Poul-Henning Kamp's MD5-crypt (`$1$`).
fn md5_crypt(pw: &[u8], salt: &str) -> String {
    let s = salt.as_bytes();
    let alt = Md5::new()
        .chain_update(pw)
        .chain_update(s)
        .chain_update(pw)
        .finalize();
    let mut ctx = Md5::new()
        .chain_update(pw)
        .chain_update(b"$1$")
        .chain_update(s);
    let mut pl = pw.len();
    while pl > 0 {
        let n = pl.min(16);
        ctx.update(&alt[..n]);
        pl -= n;
    }
    let mut i = pw.len();
    while i > 0 {
        if i & 1 == 1 {
            ctx.update([0u8]);
        } else {
            ctx.update(&pw[..1]);
        }
        i >>= 1;
    }
    let mut fin = ctx.finalize().to_vec();
    for i in 0..1000 {
        let mut c = Md5::new();
        if i & 1 == 1 {
            c.update(pw);
        } else {
            c.update(&fin);
        }
        if i % 3 != 0 {
            c.update(s);
        }
        if i % 7 != 0 {
            c.update(pw);
        }
        if i & 1 == 1 {
            c.update(&fin);
        } else {
            c.update(pw);
        }
        fin = c.finalize().to_vec();
    }
    let mut out = format!("$1${salt}$");
    for (x, y, z) in [(0, 6, 12), (1, 7, 13), (2, 8, 14), (3, 9, 15), (4, 10, 5)] {
        b64_from_24bit(&mut out, fin[x], fin[y], fin[z], 4);
    }
    b64_from_24bit(&mut out, 0, 0, fin[11], 2);
    out
}

fn random_salt(len: usize) -> String {
    (0..len)
        .map(|_| ITOA64[fastrand::usize(..ITOA64.len())] as char)
        .collect()
}

pub(super) fn password_hash(
    value: &Value,
    args: Rest<Value>,
    kwargs: Kwargs,
) -> Result<Value, Error> {
    let names = ["hashtype", "salt", "salt_size", "rounds", "ident"];
    let p = Params::new("password_hash", &names, &args, &kwargs)?;
    check_defined(value, "password_hash")?;
    let pw = py_str(value);
    let kind = p.str(0).unwrap_or_else(|| "sha512".into());
    let (algo, max_salt, default_rounds) = match kind.as_str() {
        "sha512" | "sha512_crypt" => ("sha512", 16, 656_000),
        "sha256" | "sha256_crypt" => ("sha256", 16, 535_000),
        "md5" | "md5_crypt" => ("md5", 8, 0),
        other => {
            return Err(err(format!(
                "password_hash: the hash type '{other}' is not supported by the agent (sha512, \
                 sha256, md5)"
            )))
        }
    };
    if p.str(4).is_some() {
        return Err(err("password_hash: 'ident' applies to bcrypt only"));
    }
    let salt = match p.str(1).filter(|s| !s.is_empty()) {
        Some(s) => s,
        None => {
            let size = p.opt_int(2)?.unwrap_or(max_salt as i64);
            random_salt(size.clamp(0, max_salt as i64) as usize)
        }
    };
    if salt.chars().count() > max_salt || !salt.bytes().all(|b| ITOA64.contains(&b)) {
        return Err(err(format!(
            "password_hash: Could not hash the secret: the salt must be at most {max_salt} \
             characters of [./0-9A-Za-z]"
        )));
    }
    if algo == "md5" {
        if p.opt_int(3)?.is_some() {
            return Err(err("password_hash: md5 takes no rounds"));
        }
        return Ok(Value::from(md5_crypt(pw.as_bytes(), &salt)));
    }
    let rounds = match p.opt_int(3)? {
        None | Some(0) => default_rounds,
        Some(r) if (1000..=999_999_999).contains(&r) => r as u32,
        Some(r) => {
            return Err(err(format!(
                "password_hash: Could not hash the secret: rounds {r} out of range 1000-999999999"
            )))
        }
    };
    Ok(Value::from(sha_crypt(
        algo == "sha512",
        pw.as_bytes(),
        &salt,
        rounds,
    )))
}
