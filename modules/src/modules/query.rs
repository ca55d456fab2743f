//! What the read-only modules (`stat`, `find`, `getent`, `setup`, `package_facts`,
//! `service_facts`) share: a resource whose whole effect is its result, and Ansible's `path`
//! argument type (`~` and `$VAR` expanded).

use std::path::PathBuf;

use crate::resource::{Check, ModuleError, Outcome, Resource};

/// A resource that reads the host when checked and changes nothing: its result is computed by
/// the check (also in check mode, as Ansible runs these modules there too).
pub(crate) struct Query<F>(pub F);

impl<F> Resource for Query<F>
where
    F: Fn() -> Result<Outcome, ModuleError>,
{
    fn check(&self) -> Result<Check, ModuleError> {
        Ok(Check::new(Vec::new(), (self.0)()?))
    }
    fn apply(&self, check: Check) -> Result<Outcome, ModuleError> {
        // Not reached (no changes), but the result is the check's.
        Ok(check.outcome)
    }
}

/// A boxed [`Query`], for `Module::prepare`.
pub(crate) fn query(
    f: impl Fn() -> Result<Outcome, ModuleError> + 'static,
) -> Result<Box<dyn Resource>, ModuleError> {
    Ok(Box::new(Query(f)))
}

/// A failed result with Ansible's `msg`.
pub(crate) fn failed(msg: impl Into<String>) -> Outcome {
    let msg = msg.into();
    let mut out = Outcome::default().with("msg", msg.clone());
    out.failed = Some(msg);
    out
}

/// Ansible's `type: path`: `os.path.expanduser(os.path.expandvars(value))`.
pub(crate) fn expand_path(value: &str) -> PathBuf {
    PathBuf::from(expand_user(&expand_vars(value, |k| std::env::var(k).ok())))
}

/// `os.path.expandvars`: `$NAME` and `${NAME}` replaced when the variable is set, left as they
/// are otherwise.
fn expand_vars(value: &str, lookup: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let (name, consumed) = if let Some(braced) = after.strip_prefix('{') {
            match braced.find('}') {
                Some(end) => (&braced[..end], end + 2),
                None => ("", 0),
            }
        } else {
            let end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            (&after[..end], end)
        };
        match (!name.is_empty()).then(|| lookup(name)).flatten() {
            Some(v) => out.push_str(&v),
            None => out.push_str(&rest[i..i + 1 + consumed]),
        }
        rest = &after[consumed..];
    }
    out.push_str(rest);
    out
}

/// `os.path.expanduser`: a leading `~` (from `$HOME`) or `~user` (from the user database).
fn expand_user(value: &str) -> String {
    let Some(rest) = value.strip_prefix('~') else {
        return value.to_string();
    };
    let (user, tail) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let home = if user.is_empty() {
        std::env::var("HOME").ok().or_else(|| {
            nix::unistd::User::from_uid(nix::unistd::getuid())
                .ok()
                .flatten()
                .map(|u| u.dir.to_string_lossy().into_owned())
        })
    } else {
        nix::unistd::User::from_name(user)
            .ok()
            .flatten()
            .map(|u| u.dir.to_string_lossy().into_owned())
    };
    match home {
        Some(h) => {
            let h = h.trim_end_matches('/');
            format!("{}{tail}", if h.is_empty() { "/" } else { h })
        }
        None => value.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vars_expand_like_python() {
        let env = |k: &str| (k == "A").then(|| "x".to_string());
        assert_eq!(expand_vars("/p/$A/${A}b", env), "/p/x/xb");
        assert_eq!(expand_vars("/p/$B/${B}/$", env), "/p/$B/${B}/$");
        assert_eq!(expand_vars("${A", env), "${A");
    }

    #[test]
    fn user_expands_from_root() {
        assert_eq!(expand_user("/abs/~x"), "/abs/~x");
        assert_eq!(expand_user("~root/x"), "/root/x");
        assert_eq!(expand_user("~no-such-user-here/x"), "~no-such-user-here/x");
    }
}
