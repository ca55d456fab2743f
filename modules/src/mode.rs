//! File modes as Ansible reads them: an octal number (YAML `0644` is the integer 420), octal text
//! (`"0644"`, `"644"`, `"0o644"`), symbolic text (`u=rwX,g=rX,o=`) applied like Ansible's
//! `_symbolic_mode_to_octal`, or `preserve` (copy/template: the source's mode).

use minijinja::value::ValueKind;
use minijinja::Value;

const S_ISUID: u32 = 0o4000;
const S_ISGID: u32 = 0o2000;
const S_ISVTX: u32 = 0o1000;
const S_IRWXU: u32 = 0o700;
const S_IRWXG: u32 = 0o070;
const S_IRWXO: u32 = 0o007;
const S_IXANY: u32 = 0o111;
/// Every permission bit, special bits included (Ansible's `PERM_BITS`).
pub const PERM_BITS: u32 = 0o7777;

/// Why a `mode` argument is refused (Ansible's messages).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModeError {
    /// Neither a number nor text.
    #[error("mode must be in octal or symbolic form: {0}")]
    NotAMode(String),
    /// A number with bits beyond the permission bits (or negative).
    #[error("Invalid mode supplied, only permission info is allowed: {0}")]
    NotPermissionBits(i128),
    /// Text that is neither octal nor valid symbolic permissions.
    #[error("mode must be in octal or symbolic form: {0}")]
    Symbolic(#[source] SymbolicError),
}

/// A clause of a symbolic mode (`u=rwX`) that Ansible refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad symbolic permission for mode: {clause}")]
pub struct SymbolicError {
    pub clause: String,
}

/// For callers that report the message as text (`ModuleError::new`).
impl From<ModeError> for String {
    fn from(e: ModeError) -> String {
        e.to_string()
    }
}

/// A `mode` argument, parsed once at prepare time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    Octal(u32),
    /// Validated symbolic text, applied to the file's current mode.
    Symbolic(String),
    /// Keep the source's mode (`copy`/`template`).
    Preserve,
}

impl Mode {
    /// Parses a `mode` value as Ansible does: an integer is taken as is (so YAML `644` without a
    /// leading zero is decimal 644, as in Ansible), text is tried as octal, then as symbolic.
    pub fn parse(value: &Value) -> Result<Mode, ModeError> {
        match value.kind() {
            ValueKind::Number => {
                let n = i64::try_from(value.clone())
                    .map_err(|_| ModeError::NotAMode(value.to_string()))?;
                if !(0..=PERM_BITS as i64).contains(&n) {
                    return Err(ModeError::NotPermissionBits(n.into()));
                }
                Ok(Mode::Octal(n as u32))
            }
            ValueKind::String => Mode::parse_str(value.as_str().unwrap_or("")),
            _ => Err(ModeError::NotAMode(value.to_string())),
        }
    }

    pub fn parse_str(text: &str) -> Result<Mode, ModeError> {
        if text == "preserve" {
            return Ok(Mode::Preserve);
        }
        if let Some(n) = python_int_base8(text) {
            if n > PERM_BITS as u64 {
                return Err(ModeError::NotPermissionBits(n.into()));
            }
            return Ok(Mode::Octal(n as u32));
        }
        validate_symbolic(text).map_err(ModeError::Symbolic)?;
        Ok(Mode::Symbolic(text.to_string()))
    }

    /// The mode to set on a file whose current permission bits are `current` (`is_dir` for
    /// `X`); `umask` is used for symbolic modes without a user part (`+x`). `Preserve` gives
    /// `current` back (the caller resolves it to the source's mode first).
    pub fn resolve(&self, current: u32, is_dir: bool, umask: u32) -> u32 {
        match self {
            Mode::Octal(m) => *m,
            Mode::Symbolic(s) => symbolic_to_octal(current & PERM_BITS, is_dir, s, umask)
                .unwrap_or(current & PERM_BITS),
            Mode::Preserve => current & PERM_BITS,
        }
    }
}

/// Python's `int(text, 8)`: optional whitespace and sign, optional `0o` prefix, `_` between
/// digits. Negative values are refused (not a mode).
fn python_int_base8(text: &str) -> Option<u64> {
    let t = text.trim();
    let t = t.strip_prefix('+').unwrap_or(t);
    if t.starts_with('-') {
        return None;
    }
    let body = t
        .strip_prefix("0o")
        .or_else(|| t.strip_prefix("0O"))
        .map(|b| b.strip_prefix('_').unwrap_or(b))
        .unwrap_or(t);
    if body.is_empty() || body.starts_with('_') || body.ends_with('_') || body.contains("__") {
        return None;
    }
    let mut n: u64 = 0;
    for c in body.chars() {
        if c == '_' {
            continue;
        }
        let d = c.to_digit(8)?;
        n = n.checked_mul(8)?.checked_add(d as u64)?;
    }
    Some(n)
}

/// Splits one clause (`u+x-w`) into the users part, the operators and the permission strings,
/// as `re.split('[+=-]')` / `re.findall('[+=-]')` do.
fn split_clause(clause: &str) -> (String, Vec<char>, Vec<String>) {
    let mut parts = vec![String::new()];
    let mut ops = Vec::new();
    for c in clause.chars() {
        if matches!(c, '+' | '=' | '-') {
            ops.push(c);
            parts.push(String::new());
        } else {
            parts.last_mut().expect("non-empty").push(c);
        }
    }
    let users = parts.remove(0);
    (users, ops, parts)
}

fn validate_symbolic(text: &str) -> Result<(), SymbolicError> {
    for clause in text.split(',') {
        let (users, _ops, perms) = split_clause(clause);
        let users_ok =
            users.is_empty() || users == "a" || users.chars().all(|c| matches!(c, 'u' | 'g' | 'o'));
        if !users_ok {
            return Err(SymbolicError {
                clause: clause.to_string(),
            });
        }
        for p in &perms {
            if !p.chars().all(|c| "rwxXstugo".contains(c)) {
                return Err(SymbolicError {
                    clause: clause.to_string(),
                });
            }
        }
    }
    Ok(())
}

/// Ansible's `_symbolic_mode_to_octal`, step for step.
pub fn symbolic_to_octal(
    current: u32,
    is_dir: bool,
    text: &str,
    umask: u32,
) -> Result<u32, SymbolicError> {
    validate_symbolic(text)?;
    let mut new_mode = current & PERM_BITS;
    for clause in text.split(',') {
        let (users, ops, perms_list) = split_clause(clause);
        let use_umask = users.is_empty();
        let users = if users.is_empty() || users == "a" {
            "ugo".to_string()
        } else {
            users
        };
        for (idx, perms) in perms_list.iter().enumerate() {
            for user in users.chars() {
                let apply = perms_for(user, perms, is_dir, use_umask, umask, new_mode);
                new_mode = apply_op(user, ops[idx], apply, new_mode);
            }
        }
    }
    Ok(new_mode)
}

fn apply_op(user: char, op: char, apply: u32, current: u32) -> u32 {
    match op {
        '=' => {
            let mask = match user {
                'u' => S_IRWXU | S_ISUID,
                'g' => S_IRWXG | S_ISGID,
                _ => S_IRWXO | S_ISVTX,
            };
            (current & (mask ^ PERM_BITS)) | apply
        }
        '+' => current | apply,
        _ => current - (current & apply),
    }
}

fn perms_for(user: char, perms: &str, is_dir: bool, use_umask: bool, umask: u32, prev: u32) -> u32 {
    let rev_umask = umask ^ PERM_BITS;
    let apply_x = is_dir || prev & S_IXANY > 0;
    let masked = |bit: u32| if use_umask { rev_umask & bit } else { bit };
    let mut out = 0;
    for p in perms.chars() {
        out |= match (user, p) {
            ('u', 'r') => masked(0o400),
            ('u', 'w') => masked(0o200),
            ('u', 'x') => masked(0o100),
            ('u', 's') => S_ISUID,
            ('u', 't') => 0,
            ('u', 'u') => prev & S_IRWXU,
            ('u', 'g') => (prev & S_IRWXG) << 3,
            ('u', 'o') => (prev & S_IRWXO) << 6,
            ('u', 'X') => u32::from(apply_x) * 0o100,
            ('g', 'r') => masked(0o040),
            ('g', 'w') => masked(0o020),
            ('g', 'x') => masked(0o010),
            ('g', 's') => S_ISGID,
            ('g', 't') => 0,
            ('g', 'u') => (prev & S_IRWXU) >> 3,
            ('g', 'g') => prev & S_IRWXG,
            ('g', 'o') => (prev & S_IRWXO) << 3,
            ('g', 'X') => u32::from(apply_x) * 0o010,
            ('o', 'r') => masked(0o004),
            ('o', 'w') => masked(0o002),
            ('o', 'x') => masked(0o001),
            ('o', 's') => 0,
            ('o', 't') => S_ISVTX,
            ('o', 'u') => (prev & S_IRWXU) >> 6,
            ('o', 'g') => (prev & S_IRWXG) >> 3,
            ('o', 'o') => prev & S_IRWXO,
            ('o', 'X') => u32::from(apply_x),
            _ => 0,
        };
    }
    out
}

/// Formats a mode as Ansible reports it: `'0%03o'` (`0644`, `02755`).
pub fn format(mode: u32) -> String {
    format!("0{:03o}", mode & PERM_BITS)
}

/// The process umask, read without changing it (from /proc when possible: `umask(2)` is
/// process-wide and setting it to read it races with other threads).
///
/// Read once per process (the agent never changes its umask): checks call this per file.
pub fn umask() -> u32 {
    static UMASK: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *UMASK.get_or_init(read_umask)
}

fn read_umask() -> u32 {
    if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
        for line in status.lines() {
            if let Some(v) = line.strip_prefix("Umask:") {
                if let Ok(n) = u32::from_str_radix(v.trim(), 8) {
                    return n;
                }
            }
        }
    }
    let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o022));
    nix::sys::stat::umask(old);
    old.bits()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn octal_forms() {
        assert_eq!(Mode::parse(&Value::from(420)).unwrap(), Mode::Octal(0o644));
        // YAML `644` (no leading zero) is decimal 644, taken as is, as Ansible does.
        assert_eq!(Mode::parse(&Value::from(644)).unwrap(), Mode::Octal(644));
        for t in ["0644", "644", "0o644", " 0644 "] {
            assert_eq!(
                Mode::parse(&Value::from(t)).unwrap(),
                Mode::Octal(0o644),
                "{t}"
            );
        }
        assert_eq!(Mode::parse_str("02755").unwrap(), Mode::Octal(0o2755));
        assert_eq!(Mode::parse_str("preserve").unwrap(), Mode::Preserve);
        assert!(Mode::parse_str("0899").is_err());
        assert!(Mode::parse_str("017777").is_err());
        assert!(Mode::parse_str("u=rwz").is_err());
        assert!(Mode::parse_str("k+x").is_err());
        assert!(Mode::parse(&Value::from(0o17777)).is_err());
    }

    #[test]
    fn error_messages_are_ansibles() {
        let msg = |v: Value| Mode::parse(&v).unwrap_err().to_string();
        assert_eq!(
            msg(Value::from(0o17777)),
            "Invalid mode supplied, only permission info is allowed: 8191"
        );
        assert_eq!(
            msg(Value::from(-1)),
            "Invalid mode supplied, only permission info is allowed: -1"
        );
        assert_eq!(
            msg(Value::from("017777")),
            "Invalid mode supplied, only permission info is allowed: 8191"
        );
        assert_eq!(
            msg(Value::from("u=rw,k+x")),
            "mode must be in octal or symbolic form: bad symbolic permission for mode: k+x"
        );
        assert_eq!(
            msg(Value::from(true)),
            "mode must be in octal or symbolic form: True"
        );
        let e = Mode::parse_str("u=rwz").unwrap_err();
        let source = std::error::Error::source(&e).map(ToString::to_string);
        assert_eq!(
            source.as_deref(),
            Some("bad symbolic permission for mode: u=rwz")
        );
    }

    #[test]
    fn symbolic_table() {
        // (current, is_dir, symbolic, umask, expected)
        let cases: &[(u32, bool, &str, u32, u32)] = &[
            (0o644, false, "u=rwX,g=rX,o=", 0o022, 0o640),
            (0o755, false, "u=rwX,g=rX,o=", 0o022, 0o750),
            (0o644, true, "u=rwX,g=rX,o=", 0o022, 0o750),
            (0o644, false, "a+x", 0o022, 0o755),
            (0o777, false, "ug-w", 0o022, 0o557),
            (0o644, false, "+x", 0o022, 0o755),
            (0o644, false, "+w", 0o022, 0o644),
            (0o644, false, "=rw", 0o022, 0o644),
            (0o000, false, "=rw", 0o002, 0o664),
            // `=` clears setuid/setgid/sticky for the users it names.
            (0o2775, true, "u=rwX", 0o022, 0o2775),
            (0o2775, true, "g=rwX", 0o022, 0o775),
            (0o4755, false, "u=rwx", 0o022, 0o755),
            (0o1777, true, "o=", 0o022, 0o770),
            (0o1777, true, "o=rwx", 0o022, 0o777),
            (0o644, false, "u+s,g+s", 0o022, 0o6644),
            (0o755, true, "o+t", 0o022, 0o1755),
            (0o640, false, "o=u", 0o022, 0o646),
            (0o640, false, "g=u-w", 0o022, 0o640),
            (0o600, false, "go=u", 0o022, 0o666),
            (0o644, false, "u=rw,g=r,o=r", 0o022, 0o644),
            (0o600, false, "u+rwx,g+rx", 0o022, 0o750),
            (0o640, false, "a-x+X", 0o022, 0o640),
            (0o740, false, "a-x+X", 0o022, 0o640),
            (0o740, false, "a+X", 0o022, 0o751),
            (0o644, false, "", 0o022, 0o644),
        ];
        for &(cur, dir, s, um, want) in cases {
            let got = symbolic_to_octal(cur, dir, s, um).unwrap();
            assert_eq!(
                got, want,
                "{cur:o} {s} (dir {dir}) -> {got:o}, want {want:o}"
            );
        }
    }

    #[test]
    fn formats_like_ansible() {
        assert_eq!(format(0o644), "0644");
        assert_eq!(format(0o2755), "02755");
        assert_eq!(format(0o7), "0007");
    }
}
