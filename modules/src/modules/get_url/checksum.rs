//! `get_url`'s `checksum`: `<algorithm>:<hex>` or `<algorithm>:<URL of a checksum file>`, and the
//! digests of files and downloads.

use std::io::Read;
use std::path::Path;
use std::sync::LazyLock;

use md5::Md5;
use regex::Regex;
use sha1::Sha1;
use sha2::{Digest, Sha224, Sha256, Sha384, Sha512};

/// A digest algorithm Ansible's `digest_from_file` accepts and this build computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Md5,
    Sha1,
    Sha224,
    Sha256,
    Sha384,
    Sha512,
}

impl Algorithm {
    pub fn parse(name: &str) -> Result<Algorithm, String> {
        Ok(match name {
            "md5" => Algorithm::Md5,
            "sha1" => Algorithm::Sha1,
            "sha224" => Algorithm::Sha224,
            "sha256" => Algorithm::Sha256,
            "sha384" => Algorithm::Sha384,
            "sha512" => Algorithm::Sha512,
            other => {
                return Err(format!(
                    "checksum algorithm '{other}' is not supported (md5, sha1, sha224, sha256, \
                     sha384, sha512)"
                ))
            }
        })
    }
}

/// The digest of some bytes, in lower-case hex.
pub fn digest(algo: Algorithm, data: &[u8]) -> String {
    let mut h = Hasher::new(algo);
    h.update(data);
    h.finish()
}

/// The digest of a file, read in blocks.
pub fn digest_file(algo: Algorithm, path: &Path) -> std::io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Hasher::new(algo);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok(h.finish());
        }
        h.update(&buf[..n]);
    }
}

enum Hasher {
    Md5(Md5),
    Sha1(Sha1),
    Sha224(Sha224),
    Sha256(Sha256),
    Sha384(Sha384),
    Sha512(Sha512),
}

impl Hasher {
    fn new(algo: Algorithm) -> Hasher {
        match algo {
            Algorithm::Md5 => Hasher::Md5(Md5::new()),
            Algorithm::Sha1 => Hasher::Sha1(Sha1::new()),
            Algorithm::Sha224 => Hasher::Sha224(Sha224::new()),
            Algorithm::Sha256 => Hasher::Sha256(Sha256::new()),
            Algorithm::Sha384 => Hasher::Sha384(Sha384::new()),
            Algorithm::Sha512 => Hasher::Sha512(Sha512::new()),
        }
    }

    fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Md5(h) => h.update(data),
            Hasher::Sha1(h) => h.update(data),
            Hasher::Sha224(h) => h.update(data),
            Hasher::Sha256(h) => h.update(data),
            Hasher::Sha384(h) => h.update(data),
            Hasher::Sha512(h) => h.update(data),
        }
    }

    fn finish(self) -> String {
        let bytes: Vec<u8> = match self {
            Hasher::Md5(h) => h.finalize().to_vec(),
            Hasher::Sha1(h) => h.finalize().to_vec(),
            Hasher::Sha224(h) => h.finalize().to_vec(),
            Hasher::Sha256(h) => h.finalize().to_vec(),
            Hasher::Sha384(h) => h.finalize().to_vec(),
            Hasher::Sha512(h) => h.finalize().to_vec(),
        };
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// Where the expected digest comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expected {
    Hex(String),
    /// A checksum file to download (`sha256:https://.../SHA256SUMS`).
    Url(String),
}

/// Parses the `checksum` argument (Ansible's messages).
pub fn parse(arg: &str) -> Result<(Algorithm, Expected), String> {
    let Some((algo, value)) = arg.split_once(':') else {
        return Err("The checksum parameter has to be in format <algorithm>:<checksum>".into());
    };
    let algo = Algorithm::parse(algo)?;
    let scheme = value.split_once("://").map(|(s, _)| s).unwrap_or("");
    if ["http", "https", "ftp", "file"].contains(&scheme) {
        return Ok((algo, Expected::Url(value.to_string())));
    }
    Ok((algo, Expected::Hex(normalize(value)?)))
}

/// Ansible's clean-up of a digest: non-word characters (a zero-width space) removed, lower case,
/// and it must read as hex.
pub fn normalize(value: &str) -> Result<String, String> {
    static NON_WORD: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\W+").expect("regex"));
    let clean = NON_WORD.replace_all(value, "").to_lowercase();
    if clean.is_empty() || !clean.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err("The checksum format is invalid".into());
    }
    Ok(clean)
}

/// The digest given for `filename` in a checksum file (GNU `digest  name` or BSD
/// `ALGO (name) = digest` lines; a file holding one word is that digest), as Ansible's
/// `parse_digest_lines` reads it: the first match wins.
pub fn digest_for(filename: &str, text: &str) -> Option<String> {
    static BSD: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"^(\w+) ?\((?P<path>.+)\) ?= (?P<digest>[\w.]+)$").expect("regex")
    });
    static GNU: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"^(?P<digest>[\w.]+)\s+(\*|\./|\.)?(?P<path>.+)$").expect("regex")
    });
    let lines: Vec<&str> = text.split('\n').collect();
    let lines = match lines.last() {
        Some(&"") => &lines[..lines.len() - 1],
        _ => &lines[..],
    };
    if lines.len() == 1 && lines[0].split_whitespace().count() == 1 {
        return Some(lines[0].to_string());
    }
    for line in lines {
        if let Some(m) = BSD.captures(line) {
            if &m["path"] == filename {
                return Some(m["digest"].to_string());
            }
        } else if let Some(m) = GNU.captures(line) {
            if m["path"].trim_start_matches(['.', '/']) == filename {
                return Some(m["digest"].to_string());
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_argument() {
        assert_eq!(
            parse("sha256:ABCdef\u{200b}").unwrap(),
            (Algorithm::Sha256, Expected::Hex("abcdef".into()))
        );
        assert_eq!(
            parse("sha1:http://h/SUMS").unwrap(),
            (Algorithm::Sha1, Expected::Url("http://h/SUMS".into()))
        );
        assert!(parse("abcdef")
            .unwrap_err()
            .contains("<algorithm>:<checksum>"));
        assert_eq!(
            parse("sha256:xyz").unwrap_err(),
            "The checksum format is invalid"
        );
        assert!(parse("blake2b:00").unwrap_err().contains("blake2b"));
    }

    #[test]
    fn checksum_files() {
        let gnu = "aaa  other.tar.gz\nbbb *./app.tar.gz\n";
        assert_eq!(digest_for("app.tar.gz", gnu).as_deref(), Some("bbb"));
        let bsd = "SHA256 (app.tar.gz) = ccc\n";
        assert_eq!(digest_for("app.tar.gz", bsd).as_deref(), Some("ccc"));
        assert_eq!(digest_for("app.tar.gz", "ddd\n").as_deref(), Some("ddd"));
        assert_eq!(digest_for("missing", gnu), None);
    }

    #[test]
    fn digests() {
        assert_eq!(
            digest(Algorithm::Sha1, b""),
            "da39a3ee5e6b4b0d3255bfef95601890afd80709"
        );
        assert_eq!(
            digest(Algorithm::Md5, b"abc"),
            "900150983cd24fb0d6963f7d28e17f72"
        );
    }
}
