//! `user: generate_ssh_key`: the user's SSH key pair made with `ssh-keygen`, as ansible-core's
//! `ssh_key_gen` makes it.
//!
//! Kept from Ansible: a key is generated only when neither the private nor the public file
//! exists (`force: yes` regenerates it, every run, as there); `ssh_key_file` relative to the
//! user's home (default `.ssh/id_<type>`); the key directory is created mode 0700 and the
//! files owned by the user; `ssh_key_bits: 0` (the default) lets ssh-keygen choose; the result
//! reports `ssh_key_file`, `ssh_public_key` (null without one) and `ssh_fingerprint`
//! (`ssh-keygen -l` output, empty without a key). Refused: `ssh_key_passphrase` (Ansible types
//! it into ssh-keygen through a terminal; the agent would have to put it on a command line).

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use minijinja::Value;

use super::super::accounts::ToolOutput;
use crate::args::Args;
use crate::resource::{ModuleError, Outcome};

/// What `generate_ssh_key` asks for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct SshKeySpec {
    pub key_type: String,
    pub bits: i64,
    /// As given: absolute, or relative to the user's home.
    pub file: String,
    pub comment: String,
    pub force: bool,
}

impl SshKeySpec {
    /// The spec from the task's arguments (`None` without `generate_ssh_key: yes`).
    pub fn from_args(args: &Args) -> Result<Option<SshKeySpec>, ModuleError> {
        if args.has("ssh_key_passphrase") {
            return Err(ModuleError::new(
                "ssh_key_passphrase is not supported: Ansible types the passphrase into ssh-keygen \
                 through a terminal, the agent would have to pass it on a command line; generate \
                 the key without one or encrypt it afterwards",
            ));
        }
        // Without generate_ssh_key the other ssh_key_* arguments mean nothing (as in Ansible).
        if !args.bool_or("generate_ssh_key", false) {
            return Ok(None);
        }
        let key_type = args.str("ssh_key_type").unwrap_or_else(|| "rsa".into());
        Ok(Some(SshKeySpec {
            file: args
                .str("ssh_key_file")
                .unwrap_or_else(|| format!(".ssh/id_{key_type}")),
            bits: args.int("ssh_key_bits").unwrap_or(0),
            comment: args
                .str("ssh_key_comment")
                .unwrap_or_else(|| format!("ansible-generated on {}", hostname())),
            force: args.bool_or("force", false),
            key_type,
        }))
    }

    /// The private key's path for a user whose home is `home`.
    pub fn path(&self, home: &str) -> PathBuf {
        if self.file.starts_with('/') {
            PathBuf::from(&self.file)
        } else {
            Path::new(home).join(&self.file)
        }
    }

    /// The generation to make, if one is due (as `ssh_key_gen`: an existing private or public
    /// file stops it unless `force`). `home` is the user's home as it is now, if the user exists.
    pub fn plan(&self, home: Option<&str>) -> Option<Keygen> {
        if let Some(home) = home {
            let path = self.path(home);
            let exists = path.exists() || public_of(&path).exists();
            if exists && !self.force {
                return None;
            }
        }
        Some(Keygen { spec: self.clone() })
    }

    /// `ssh_key_file`, `ssh_public_key` and `ssh_fingerprint` of the registered result.
    pub fn report(&self, home: &str, out: Outcome) -> Outcome {
        let path = self.path(home);
        let public = std::fs::read_to_string(public_of(&path))
            .map(|s| Value::from(s.trim()))
            .unwrap_or(Value::from(()));
        out.with("ssh_fingerprint", fingerprint(&path))
            .with("ssh_key_file", path.display().to_string())
            .with("ssh_public_key", public)
    }
}

/// A key generation planned by check, run once the account exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keygen {
    spec: SshKeySpec,
}

impl Keygen {
    /// Runs ssh-keygen for the user `uid:gid` whose home is `home` (read after the account
    /// changes).
    pub(crate) fn run(&self, home: &str, uid: u32, gid: u32) -> Result<ToolOutput, ModuleError> {
        let path = self.spec.path(home);
        if !self.spec.file.starts_with('/') && !Path::new(home).exists() {
            return Err(ModuleError::new(format!(
                "User home directory {home} does not exist (needed for ssh_key_file {})",
                self.spec.file
            )));
        }
        let dir = path.parent().unwrap_or(Path::new("/"));
        if !dir.exists() {
            std::fs::DirBuilder::new()
                .mode(0o700)
                .create(dir)
                .and_then(|()| std::fs::set_permissions(dir, PermissionsExt::from_mode(0o700)))
                .and_then(|()| std::os::unix::fs::chown(dir, Some(uid), Some(gid)))
                .map_err(|e| {
                    ModuleError::new(format!("Failed to create {}: {e}", dir.display()))
                })?;
        }
        let public = public_of(&path);
        let overwrite = path.exists();
        if public.exists() {
            std::fs::remove_file(&public)?;
        }
        let mut cmd = Command::new("ssh-keygen");
        cmd.arg("-t").arg(&self.spec.key_type);
        if self.spec.bits > 0 {
            cmd.arg("-b").arg(self.spec.bits.to_string());
        }
        cmd.arg("-C")
            .arg(&self.spec.comment)
            .arg("-f")
            .arg(&path)
            .args(["-N", ""])
            .env("LC_ALL", "C")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .map_err(|e| ModuleError::new(format!("cannot run ssh-keygen: {e}")))?;
        if let Some(mut stdin) = child.stdin.take() {
            // ssh-keygen asks "Overwrite (y/n)?" about an existing private key: yes (force).
            if overwrite {
                stdin.write_all(b"y\n")?;
            }
        }
        let out = child.wait_with_output()?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        if !out.status.success() {
            return Err(ModuleError::new(format!(
                "ssh-keygen failed ({}): {}",
                out.status,
                stderr.trim()
            )));
        }
        for f in [&path, &public] {
            std::os::unix::fs::chown(f, Some(uid), Some(gid))?;
        }
        Ok(ToolOutput { stdout, stderr })
    }

    /// For the change's description.
    pub fn summary(&self) -> String {
        format!(
            "ssh key {} ({}) generated",
            self.spec.file, self.spec.key_type
        )
    }
}

fn public_of(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".pub");
    PathBuf::from(p)
}

/// `ssh-keygen -l -f FILE`, stripped; as Ansible, its stderr when it fails and "" when there
/// is no key file.
fn fingerprint(path: &Path) -> String {
    if !path.exists() {
        return String::new();
    }
    match Command::new("ssh-keygen")
        .arg("-l")
        .arg("-f")
        .arg(path)
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .output()
    {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).trim().to_string(),
        Ok(o) => String::from_utf8_lossy(&o.stderr).trim().to_string(),
        Err(e) => e.to_string(),
    }
}

fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(file: &str, force: bool) -> SshKeySpec {
        SshKeySpec {
            key_type: "ed25519".into(),
            bits: 0,
            file: file.into(),
            comment: "c".into(),
            force,
        }
    }

    #[test]
    fn key_path_is_relative_to_home_unless_absolute() {
        assert_eq!(
            spec(".ssh/id_ed25519", false).path("/home/u"),
            PathBuf::from("/home/u/.ssh/id_ed25519")
        );
        assert_eq!(spec("/k/id", false).path("/home/u"), PathBuf::from("/k/id"));
    }

    #[test]
    fn an_existing_private_or_public_key_stops_generation_unless_forced() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().to_str().unwrap();
        assert!(spec("id", false).plan(Some(home)).is_some());
        std::fs::write(dir.path().join("id.pub"), "ssh-ed25519 AAAA c\n").unwrap();
        assert!(spec("id", false).plan(Some(home)).is_none());
        assert!(spec("id", true).plan(Some(home)).is_some());
        // A user still to create: always generated.
        assert!(spec("id", false).plan(None).is_some());
    }

    #[test]
    fn report_without_a_key_has_null_public_key_and_empty_fingerprint() {
        let dir = tempfile::tempdir().unwrap();
        let out = spec("id", false).report(dir.path().to_str().unwrap(), Outcome::default());
        assert_eq!(out.data["ssh_fingerprint"].as_str(), Some(""));
        assert!(out.data["ssh_public_key"].is_none());
    }
}
