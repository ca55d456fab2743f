//! The local account databases (`/etc/passwd`, `/etc/group`, `/etc/shadow`) read by parsing the
//! files (no process, no NSS), and the system tools that change them (`useradd`, `groupmod`, ...)
//! run as Ansible runs them. Shared by `user`, `group` and `authorized_key`.
//!
//! Only local accounts are seen: Ansible asks NSS (`pwd`/`grp`), which also finds directory
//! (LDAP, SSSD) accounts. A user that exists only in a directory is "absent" here.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::resource::{Change, ModuleError, Outcome};

/// Where the account files are (an `/etc` directory; a test root in unit tests).
#[derive(Debug, Clone)]
pub struct Etc {
    pub dir: PathBuf,
}

impl Default for Etc {
    fn default() -> Self {
        Etc {
            dir: PathBuf::from("/etc"),
        }
    }
}

impl Etc {
    pub fn read(&self) -> Result<Db, ModuleError> {
        let read = |name: &str, required: bool| -> Result<String, ModuleError> {
            let path = self.dir.join(name);
            match std::fs::read(&path) {
                Ok(b) => Ok(String::from_utf8_lossy(&b).into_owned()),
                Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => {
                    Ok(String::new())
                }
                Err(e) if !required && e.kind() == std::io::ErrorKind::PermissionDenied => {
                    Ok(String::new())
                }
                Err(e) => Err(ModuleError::new(format!(
                    "cannot read {}: {e}",
                    path.display()
                ))),
            }
        };
        Ok(Db::parse(
            &read("passwd", true)?,
            &read("group", true)?,
            &read("shadow", false)?,
        ))
    }

    /// `HOME_MODE` (or `~UMASK`) from `login.defs`, as Ansible's `create_homedir` reads it.
    pub fn home_mode(&self) -> u32 {
        let Ok(text) = std::fs::read_to_string(self.dir.join("login.defs")) else {
            return 0o755;
        };
        home_mode_from(&text)
    }
}

pub fn home_mode_from(login_defs: &str) -> u32 {
    let mut mode = 0o755;
    for line in login_defs.lines() {
        let mut words = line.split_whitespace();
        let (Some(key), Some(val), None) = (words.next(), words.next(), words.next()) else {
            continue;
        };
        // Ansible's regexes: `^HOME_MODE\s+(\d+)$` and `^UMASK\s+(\d+)$` (no leading blanks).
        if line.starts_with(char::is_whitespace) || !val.chars().all(|c| c.is_ascii_digit()) {
            continue;
        }
        let Ok(n) = u32::from_str_radix(val, 8) else {
            continue;
        };
        match key {
            "HOME_MODE" => return n,
            "UMASK" => mode = 0o777 & !n,
            _ => {}
        }
    }
    mode
}

/// A line of `/etc/passwd`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswdEntry {
    pub name: String,
    pub passwd: String,
    pub uid: u32,
    pub gid: u32,
    pub gecos: String,
    pub home: String,
    pub shell: String,
}

/// A line of `/etc/group`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupEntry {
    pub name: String,
    pub gid: u32,
    pub members: Vec<String>,
}

/// A line of `/etc/shadow` (the fields Ansible looks at).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShadowEntry {
    pub name: String,
    pub hash: String,
    /// Days since the epoch; -1 when empty.
    pub expire: i64,
    /// Password aging (`chage -m/-M/-W`), in days; -1 when empty (as Python's `spwd`).
    pub min: i64,
    pub max: i64,
    pub warn: i64,
}

/// The parsed account databases.
#[derive(Debug, Clone, Default)]
pub struct Db {
    pub users: Vec<PasswdEntry>,
    pub groups: Vec<GroupEntry>,
    pub shadow: Vec<ShadowEntry>,
}

fn local_lines(text: &str) -> impl Iterator<Item = &str> {
    text.lines()
        .map(|l| l.trim_end_matches('\r'))
        // NIS compat entries (`+`, `-name`) and comments are not local accounts.
        .filter(|l| !l.is_empty() && !l.starts_with(['+', '-', '#']))
}

impl Db {
    pub fn parse(passwd: &str, group: &str, shadow: &str) -> Db {
        let users = local_lines(passwd)
            .filter_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                if f.len() < 7 {
                    return None;
                }
                Some(PasswdEntry {
                    name: f[0].to_string(),
                    passwd: f[1].to_string(),
                    uid: f[2].parse().ok()?,
                    gid: f[3].parse().ok()?,
                    gecos: f[4].to_string(),
                    home: f[5].to_string(),
                    shell: f[6..].join(":"),
                })
            })
            .collect();
        let groups = local_lines(group)
            .filter_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                if f.len() < 3 {
                    return None;
                }
                Some(GroupEntry {
                    name: f[0].to_string(),
                    gid: f[2].parse().ok()?,
                    members: f
                        .get(3)
                        .map(|m| {
                            m.split(',')
                                .filter(|s| !s.is_empty())
                                .map(str::to_string)
                                .collect()
                        })
                        .unwrap_or_default(),
                })
            })
            .collect();
        let shadow = local_lines(shadow)
            .filter_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                if f.len() < 2 {
                    return None;
                }
                let days = |i: usize| {
                    f.get(i)
                        .and_then(|e| e.trim().parse::<i64>().ok())
                        .unwrap_or(-1)
                };
                Some(ShadowEntry {
                    name: f[0].to_string(),
                    hash: f[1].to_string(),
                    expire: days(7),
                    min: days(3),
                    max: days(4),
                    warn: days(5),
                })
            })
            .collect();
        Db {
            users,
            groups,
            shadow,
        }
    }

    pub fn user(&self, name: &str) -> Option<&PasswdEntry> {
        self.users.iter().find(|u| u.name == name)
    }

    pub fn shadow(&self, name: &str) -> Option<&ShadowEntry> {
        self.shadow.iter().find(|s| s.name == name)
    }

    pub fn group_by_name(&self, name: &str) -> Option<&GroupEntry> {
        self.groups.iter().find(|g| g.name == name)
    }

    /// A group given as Ansible's user module takes it: as a gid first, then as a name.
    pub fn group_lookup(&self, group: &str) -> Option<&GroupEntry> {
        if let Ok(gid) = group.trim().parse::<u32>() {
            if let Some(g) = self.groups.iter().find(|g| g.gid == gid) {
                return Some(g);
            }
        }
        self.group_by_name(group)
    }

    /// The user's password hash as Ansible sees it: the passwd field, or the shadow one when
    /// that is a placeholder (`x`) or empty.
    pub fn password_of(&self, user: &PasswdEntry) -> String {
        if user.passwd.chars().count() <= 1 {
            return self
                .shadow(&user.name)
                .map(|s| s.hash.clone())
                .unwrap_or_default();
        }
        user.passwd.clone()
    }

    /// Names of the groups that list `user` as a member (its primary group included when
    /// listed), in file order.
    pub fn member_of(&self, user: &str) -> Vec<String> {
        self.groups
            .iter()
            .filter(|g| g.members.iter().any(|m| m == user))
            .map(|g| g.name.clone())
            .collect()
    }
}

/// A system tool run with its arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tool {
    pub argv: Vec<String>,
}

/// What running a tool printed.
#[derive(Debug, Default, Clone)]
pub struct ToolOutput {
    pub stdout: String,
    pub stderr: String,
}

/// Directories searched for the tools (Ansible's `get_bin_path` adds the sbin directories).
const BIN_DIRS: &[&str] = &["/usr/sbin", "/sbin", "/usr/bin", "/bin", "/usr/local/sbin"];

fn bin_path(name: &str) -> Result<PathBuf, ModuleError> {
    for d in BIN_DIRS {
        let p = Path::new(d).join(name);
        if p.is_file() {
            return Ok(p);
        }
    }
    Err(ModuleError::new(format!(
        "Failed to find required executable \"{name}\" in paths: {}",
        BIN_DIRS.join(":")
    )))
}

impl Tool {
    pub fn new(argv: Vec<String>) -> Tool {
        Tool { argv }
    }

    /// Runs the tool; a non-zero exit is an error carrying its stderr (Ansible's `msg`).
    pub fn run(&self) -> Result<ToolOutput, ModuleError> {
        let Some((prog, args)) = self.argv.split_first() else {
            return Err(ModuleError::new("internal error: empty command"));
        };
        let out = Command::new(bin_path(prog)?)
            .args(args)
            .env("LC_ALL", "C")
            .env("LANG", "C")
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(|e| ModuleError::new(format!("cannot run {prog}: {e}")))?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        if !out.status.success() {
            let msg = if stderr.trim().is_empty() {
                format!("{prog} failed ({})", out.status)
            } else {
                stderr.trim_end().to_string()
            };
            return Err(ModuleError::new(msg));
        }
        Ok(ToolOutput { stdout, stderr })
    }
}

/// One step of making an account change, planned by `check` and carried to `apply` in the
/// [`Change::Account`] it makes.
#[derive(Debug, Clone, PartialEq)]
pub enum AccountStep {
    Tool(Tool),
    /// `mkdir -p` of a new home's parent (useradd cannot create it).
    MakeParent(PathBuf),
    /// Create a missing home from the skeleton, mode from login.defs, owned by the user.
    CreateHome {
        path: PathBuf,
        skeleton: PathBuf,
    },
    /// Generate the user's SSH key pair with `ssh-keygen` (`user: generate_ssh_key`), owned by
    /// the user.
    SshKeygen(crate::modules::user::ssh_key::Keygen),
}

/// The planned changes with their steps moved into them, as `check` returns them.
pub fn with_steps(planned: Vec<(Change, Vec<AccountStep>)>) -> Vec<Change> {
    planned
        .into_iter()
        .map(|(mut change, planned_steps)| {
            if let Change::Account { steps, .. } = &mut change {
                *steps = planned_steps;
            }
            change
        })
        .collect()
}

/// Runs the steps of each account change in order; `after_account` runs the steps that need
/// the account to exist (a home made, a key generated: owned by its new ids). Returns what the
/// tools printed.
pub fn run_steps(
    changes: &[Change],
    after_account: &dyn Fn(&AccountStep) -> Result<ToolOutput, ModuleError>,
) -> Result<ToolOutput, ModuleError> {
    let mut printed = ToolOutput::default();
    for change in changes {
        let Change::Account { steps, .. } = change else {
            continue;
        };
        for step in steps {
            match step {
                AccountStep::Tool(t) => {
                    let o = t.run()?;
                    printed.stdout.push_str(&o.stdout);
                    printed.stderr.push_str(&o.stderr);
                }
                AccountStep::MakeParent(p) => std::fs::create_dir_all(p)
                    .map_err(|e| ModuleError::new(format!("cannot create {}: {e}", p.display())))?,
                AccountStep::CreateHome { .. } | AccountStep::SshKeygen(_) => {
                    let o = after_account(step)?;
                    printed.stdout.push_str(&o.stdout);
                    printed.stderr.push_str(&o.stderr);
                }
            }
        }
    }
    Ok(printed)
}

impl ToolOutput {
    /// The outcome with what the tools printed, when they printed anything.
    pub fn report(self, mut out: Outcome) -> Outcome {
        if !self.stdout.is_empty() {
            out = out.with("stdout", self.stdout);
        }
        if !self.stderr.is_empty() {
            out = out.with("stderr", self.stderr);
        }
        out
    }
}

/// Days since 1970-01-01 to a civil date `YYYY-MM-DD` (proleptic Gregorian, UTC).
pub fn date_of_days(days: i64) -> String {
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!("{y:04}-{m:02}-{d:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_three_files() {
        let db = Db::parse(
            "root:x:0:0:root:/root:/bin/bash\n+nis\nbad line\nalice:x:1001:1001:Alice A,,,:/home/alice:/bin/sh\n",
            "root:x:0:\nalice:x:1001:\nwheel:x:10:alice,bob\nadm:x:4:bob\n",
            "root:*:19000:0:99999:7:::\nalice:$6$salt$hash:19000:0:99999:7::20000:\n",
        );
        assert_eq!(db.users.len(), 2);
        let a = db.user("alice").unwrap();
        assert_eq!((a.uid, a.gid), (1001, 1001));
        assert_eq!(a.gecos, "Alice A,,,");
        assert_eq!(db.password_of(a), "$6$salt$hash");
        assert_eq!(db.shadow("alice").unwrap().expire, 20000);
        assert_eq!(db.shadow("root").unwrap().expire, -1);
        assert_eq!(db.member_of("alice"), vec!["wheel"]);
        assert_eq!(db.member_of("bob"), vec!["wheel", "adm"]);
        assert_eq!(db.group_lookup("10").unwrap().name, "wheel");
        assert_eq!(db.group_lookup("adm").unwrap().gid, 4);
        assert!(db.group_lookup("nope").is_none());
    }

    #[test]
    fn home_mode_from_login_defs() {
        assert_eq!(home_mode_from(""), 0o755);
        assert_eq!(home_mode_from("UMASK\t\t027\n"), 0o750);
        assert_eq!(home_mode_from("UMASK 022\nHOME_MODE 0700\n"), 0o700);
        assert_eq!(home_mode_from("#HOME_MODE 0700\nUMASK 077\n"), 0o700);
    }

    #[test]
    fn dates() {
        assert_eq!(date_of_days(0), "1970-01-01");
        assert_eq!(date_of_days(19_723), "2024-01-01");
        assert_eq!(date_of_days(20_000), "2024-10-04");
        assert_eq!(date_of_days(-1), "1969-12-31");
    }
}
