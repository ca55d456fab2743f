//! The `user` module: a local user account, as ansible-core's `user` module manages it on
//! Linux. State is read by parsing `/etc/passwd`, `/etc/group` and `/etc/shadow`; changes are
//! made with `useradd`, `usermod` and `userdel`, with the flags Ansible passes:
//!
//! - create: `useradd [-u UID [-o]] [-g GROUP | -N] [-G G1,G2] [-c COMMENT] [-d HOME]
//!   [-s SHELL] [-e DATE] [-p HASH] (-m [-k SKEL] | -M) [-r] NAME` (`-N` when no `group` is
//!   given and a group named like the user exists);
//! - modify: `usermod [-u UID [-o]] [-g GID] [-a] [-G GROUPS] [-c] [-d HOME [-m]] [-s] [-e]
//!   [-L|-U] [-p HASH] NAME`, only with what differs (`groups` compared with the groups that
//!   list the user; with `append` only missing groups count);
//! - remove: `userdel [-f] [-r] NAME`.
//!
//! An existing user whose home directory is missing gets it created from `/etc/skel` (mode from
//! `login.defs`, owned by the user) unless `create_home: no`, as Ansible does on every run.
//! The password hash is never shown: changes say "password changed", results
//! `NOT_LOGGING_PASSWORD`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::host::HostState;

use super::accounts::{date_of_days, run_steps, with_steps, AccountStep as Step, Db, Etc, Tool};
use crate::args::{ArgDef, ArgSpec, ArgType, Args};
use crate::resource::{
    AccountKind, AccountOp, Change, Check, Module, ModuleContext, ModuleError, Outcome, Owned,
    Resource,
};
use ssh_key::SshKeySpec;

pub struct UserModule;

static SPEC: ArgSpec = ArgSpec {
    module: "user",
    args: &[
        ArgDef::new("name", ArgType::Str)
            .aliases(&["user"])
            .required(),
        ArgDef::new("state", ArgType::Str).choices(&["present", "absent"]),
        ArgDef::new("uid", ArgType::Int),
        ArgDef::new("non_unique", ArgType::Bool),
        ArgDef::new("group", ArgType::Str),
        ArgDef::new("groups", ArgType::List),
        ArgDef::new("append", ArgType::Bool),
        ArgDef::new("comment", ArgType::Str),
        ArgDef::new("home", ArgType::Path),
        ArgDef::new("shell", ArgType::Path),
        ArgDef::new("password", ArgType::Str),
        ArgDef::new("update_password", ArgType::Str).choices(&["always", "on_create"]),
        ArgDef::new("password_lock", ArgType::Bool),
        ArgDef::new("create_home", ArgType::Bool).aliases(&["createhome"]),
        ArgDef::new("skeleton", ArgType::Str),
        ArgDef::new("move_home", ArgType::Bool),
        ArgDef::new("system", ArgType::Bool),
        ArgDef::new("remove", ArgType::Bool),
        ArgDef::new("force", ArgType::Bool),
        ArgDef::new("expires", ArgType::Str),
        ArgDef::new("password_expire_min", ArgType::Int),
        ArgDef::new("password_expire_max", ArgType::Int),
        ArgDef::new("password_expire_warn", ArgType::Int),
        ArgDef::new("generate_ssh_key", ArgType::Bool),
        ArgDef::new("ssh_key_bits", ArgType::Int),
        ArgDef::new("ssh_key_type", ArgType::Str),
        ArgDef::new("ssh_key_file", ArgType::Path),
        ArgDef::new("ssh_key_comment", ArgType::Str),
        ArgDef::new("ssh_key_passphrase", ArgType::Str),
    ],
    free_form: false,
    mutually_exclusive: &[],
    required_one_of: &[],
};

/// The desired state of one user, from the task's arguments.
#[derive(Debug, Clone, Default)]
pub(crate) struct UserSpec {
    pub name: String,
    pub present: bool,
    pub uid: Option<u32>,
    pub non_unique: bool,
    pub group: Option<String>,
    /// `groups` joined with commas as Ansible keeps it (`None`: not given).
    pub groups: Option<String>,
    pub append: bool,
    pub comment: Option<String>,
    pub home: Option<String>,
    pub shell: Option<String>,
    pub password: Option<String>,
    pub update_always: bool,
    pub password_lock: Option<bool>,
    pub create_home: bool,
    pub skeleton: Option<String>,
    pub move_home: bool,
    pub system: bool,
    pub remove: bool,
    pub force: bool,
    /// Seconds since the epoch (negative: never expires).
    pub expires: Option<f64>,
    /// Password aging set with `chage -m/-M/-W` (days).
    pub password_expire_min: Option<i64>,
    pub password_expire_max: Option<i64>,
    pub password_expire_warn: Option<i64>,
    /// `generate_ssh_key: yes` and its `ssh_key_*` arguments.
    pub ssh_key: Option<SshKeySpec>,
}

impl Module for UserModule {
    fn spec(&self) -> &'static ArgSpec {
        &SPEC
    }

    fn prepare(&self, args: &Args, ctx: &ModuleContext) -> Result<Box<dyn Resource>, ModuleError> {
        let spec = spec_from_args(args)?;
        Ok(Box::new(UserResource {
            spec,
            etc: Etc::default(),
            host: ctx.host.clone(),
            check_mode: ctx.check_mode,
        }))
    }
}

pub(crate) fn spec_from_args(args: &Args) -> Result<UserSpec, ModuleError> {
    let uid = args.id("uid")?;
    let expires = match args.str("expires") {
        None => None,
        Some(s) => Some(s.trim().parse::<f64>().map_err(|_| {
            ModuleError::new(format!(
                "argument `expires`: expected a number of seconds since the epoch, got `{s}`"
            ))
        })?),
    };
    if expires.is_some_and(|e| !e.is_finite()) {
        return Err(ModuleError::new("argument `expires`: not a finite number"));
    }
    Ok(UserSpec {
        name: args.str("name").unwrap_or_default(),
        present: args.str("state").as_deref() != Some("absent"),
        uid,
        non_unique: args.bool_or("non_unique", false),
        group: args.str("group"),
        groups: args.list_str("groups").map(|g| g.join(",")),
        append: args.bool_or("append", false),
        comment: args.str("comment"),
        home: args.str("home"),
        shell: args.str("shell"),
        password: args.str("password"),
        update_always: args.str("update_password").as_deref() != Some("on_create"),
        password_lock: args.bool("password_lock"),
        create_home: args.bool_or("create_home", true),
        skeleton: args.str("skeleton"),
        move_home: args.bool_or("move_home", false),
        system: args.bool_or("system", false),
        remove: args.bool_or("remove", false),
        force: args.bool_or("force", false),
        expires,
        password_expire_min: args.int("password_expire_min"),
        password_expire_max: args.int("password_expire_max"),
        password_expire_warn: args.int("password_expire_warn"),
        ssh_key: SshKeySpec::from_args(args)?,
    })
}

/// What the environment looks like beside the account files (injected in tests).
pub(crate) trait Fs {
    fn exists(&self, path: &str) -> bool;
    fn is_dir(&self, path: &str) -> bool;
}

pub(crate) struct RealFs;

impl Fs for RealFs {
    fn exists(&self, path: &str) -> bool {
        Path::new(path).exists()
    }
    fn is_dir(&self, path: &str) -> bool {
        Path::new(path).is_dir()
    }
}

fn parent_of(path: &str) -> String {
    match Path::new(path).parent() {
        Some(p) => p.display().to_string(),
        None => String::new(),
    }
}

fn s(x: impl Into<String>) -> String {
    x.into()
}

fn account(op: AccountOp, name: &str, fields: Vec<String>) -> Change {
    Change::Account {
        kind: AccountKind::User,
        name: name.to_string(),
        op,
        fields,
        steps: Vec::new(),
    }
}

/// Decides the changes for `spec` against the databases `db`: each change with the steps that
/// make it. In check mode a user to create is not validated further (Ansible stops there).
pub(crate) fn plan(
    spec: &UserSpec,
    db: &Db,
    fs: &dyn Fs,
    check_mode: bool,
) -> Result<Vec<(Change, Vec<Step>)>, ModuleError> {
    let name = spec.name.as_str();
    let mut out = Vec::new();
    let current = db.user(name);
    if !spec.present {
        if current.is_some() {
            let mut argv = vec![s("userdel")];
            let mut fields = Vec::new();
            if spec.force {
                argv.push(s("-f"));
                fields.push(s("forced"));
            }
            if spec.remove {
                argv.push(s("-r"));
                fields.push(s("home removed"));
            }
            argv.push(s(name));
            out.push((
                account(AccountOp::Remove, name, fields),
                vec![Step::Tool(Tool::new(argv))],
            ));
        }
        return Ok(out);
    }
    let Some(cur) = current else {
        return plan_create(spec, db, fs, check_mode);
    };
    let mut argv = vec![s("usermod")];
    let mut fields = Vec::new();
    if let Some(uid) = spec.uid {
        if uid != cur.uid {
            argv.extend([s("-u"), uid.to_string()]);
            if spec.non_unique {
                argv.push(s("-o"));
            }
            fields.push(format!("uid {} -> {uid}", cur.uid));
        }
    }
    if let Some(group) = &spec.group {
        let g = db
            .group_lookup(group)
            .ok_or_else(|| ModuleError::new(format!("Group {group} does not exist")))?;
        if g.gid != cur.gid {
            argv.extend([s("-g"), g.gid.to_string()]);
            let old = db
                .groups
                .iter()
                .find(|x| x.gid == cur.gid)
                .map(|x| x.name.clone())
                .unwrap_or_else(|| cur.gid.to_string());
            fields.push(format!("group {old} -> {}", g.name));
        }
    }
    if let Some(groups) = &spec.groups {
        let current_groups = db.member_of(name);
        let mut wanted: Vec<String> = Vec::new();
        let mut need = false;
        if groups.is_empty() {
            need = !current_groups.is_empty() && !spec.append;
        } else {
            for g in groups.split(',').map(str::trim).filter(|g| !g.is_empty()) {
                let entry = db
                    .group_lookup(g)
                    .ok_or_else(|| ModuleError::new(format!("Group {g} does not exist")))?;
                if !wanted.contains(&entry.name) {
                    wanted.push(entry.name.clone());
                }
            }
            let added: Vec<&String> = wanted
                .iter()
                .filter(|g| !current_groups.contains(g))
                .collect();
            let removed: Vec<&String> = current_groups
                .iter()
                .filter(|g| !wanted.contains(g))
                .collect();
            if spec.append {
                if !added.is_empty() {
                    argv.push(s("-a"));
                    need = true;
                }
            } else {
                need = !added.is_empty() || !removed.is_empty();
            }
        }
        if need {
            argv.extend([s("-G"), wanted.join(",")]);
            let added: Vec<String> = wanted
                .iter()
                .filter(|g| !current_groups.contains(g))
                .map(|g| format!("+{g}"))
                .collect();
            let removed: Vec<String> = if spec.append {
                Vec::new()
            } else {
                current_groups
                    .iter()
                    .filter(|g| !wanted.contains(g))
                    .map(|g| format!("-{g}"))
                    .collect()
            };
            fields.push(format!(
                "groups {}",
                added
                    .into_iter()
                    .chain(removed)
                    .collect::<Vec<_>>()
                    .join(" ")
            ));
        }
    }
    if let Some(c) = &spec.comment {
        if *c != cur.gecos {
            argv.extend([s("-c"), c.clone()]);
            fields.push(format!("comment {:?} -> {c:?}", cur.gecos));
        }
    }
    if let Some(h) = &spec.home {
        if *h != cur.home {
            argv.extend([s("-d"), h.clone()]);
            if spec.move_home {
                argv.push(s("-m"));
            }
            fields.push(format!("home {} -> {h}", cur.home));
        }
    }
    if let Some(sh) = &spec.shell {
        if *sh != cur.shell {
            argv.extend([s("-s"), sh.clone()]);
            fields.push(format!("shell {} -> {sh}", cur.shell));
        }
    }
    if let Some(exp) = spec.expires {
        let current_expires = db.shadow(name).map(|s| s.expire).unwrap_or(0);
        if exp < 0.0 {
            if current_expires >= 0 {
                argv.extend([s("-e"), s("")]);
                fields.push(s("expires never"));
            }
        } else {
            let days = (exp / 86400.0).floor() as i64;
            if current_expires < 0 || current_expires != days {
                argv.extend([s("-e"), date_of_days(days)]);
                fields.push(format!("expires {}", date_of_days(days)));
            }
        }
    }
    let hash = db.password_of(cur);
    match spec.password_lock {
        Some(true) if !hash.starts_with('!') => {
            argv.push(s("-L"));
            fields.push(s("password locked"));
        }
        Some(false) if hash.starts_with('!') => {
            argv.push(s("-U"));
            fields.push(s("password unlocked"));
        }
        _ => {}
    }
    if let Some(pw) = &spec.password {
        if spec.update_always && hash.trim_start_matches('!') != pw.trim_start_matches('!') {
            argv.retain(|a| a != "-U" && a != "-L");
            fields.retain(|f| !f.starts_with("password "));
            argv.push(s("-p"));
            if spec.password_lock == Some(true) {
                argv.push(format!("!{pw}"));
            } else {
                argv.push(pw.clone());
            }
            fields.push(s("password changed"));
        }
    }
    if argv.len() > 1 {
        argv.push(s(name));
        out.push((
            account(AccountOp::Modify, name, fields),
            vec![Step::Tool(Tool::new(argv))],
        ));
    }
    // A missing home directory is created (every run) unless create_home is off.
    let home = spec.home.clone().unwrap_or_else(|| cur.home.clone());
    if spec.create_home && !home.is_empty() && !fs.exists(&home) {
        out.push((
            account(
                AccountOp::Modify,
                name,
                vec![format!("create home directory {home}")],
            ),
            vec![Step::CreateHome {
                path: PathBuf::from(&home),
                skeleton: PathBuf::from(spec.skeleton.as_deref().unwrap_or("/etc/skel")),
            }],
        ));
    }
    if let Some(key) = spec.ssh_key.as_ref().and_then(|k| k.plan(Some(&home))) {
        out.push((
            account(AccountOp::Modify, name, vec![key.summary()]),
            vec![Step::SshKeygen(key)],
        ));
    }
    if let Some((argv, fields)) = chage(spec, db.shadow(name)) {
        out.push((
            account(AccountOp::Modify, name, fields),
            vec![Step::Tool(Tool::new(argv))],
        ));
    }
    Ok(out)
}

/// Ansible's `set_password_expire`: `chage` with the limits that differ from the shadow entry
/// (all given ones for a user still to create).
fn chage(
    spec: &UserSpec,
    shadow: Option<&super::accounts::ShadowEntry>,
) -> Option<(Vec<String>, Vec<String>)> {
    let mut argv = vec![s("chage")];
    let mut fields = Vec::new();
    for (flag, what, want, have) in [
        (
            "-m",
            "minimum",
            spec.password_expire_min,
            shadow.map(|e| e.min),
        ),
        (
            "-M",
            "maximum",
            spec.password_expire_max,
            shadow.map(|e| e.max),
        ),
        (
            "-W",
            "warning",
            spec.password_expire_warn,
            shadow.map(|e| e.warn),
        ),
    ] {
        let Some(want) = want else { continue };
        if have == Some(want) {
            continue;
        }
        argv.extend([s(flag), want.to_string()]);
        fields.push(format!("password {what} age {want} days"));
    }
    if argv.len() == 1 {
        return None;
    }
    argv.push(spec.name.clone());
    Some((argv, fields))
}

fn plan_create(
    spec: &UserSpec,
    db: &Db,
    fs: &dyn Fs,
    check_mode: bool,
) -> Result<Vec<(Change, Vec<Step>)>, ModuleError> {
    let name = spec.name.as_str();
    let mut argv = vec![s("useradd")];
    let mut fields = Vec::new();
    let mut steps = Vec::new();
    if let Some(uid) = spec.uid {
        argv.extend([s("-u"), uid.to_string()]);
        if spec.non_unique {
            argv.push(s("-o"));
        }
        fields.push(format!("uid {uid}"));
    }
    if let Some(group) = &spec.group {
        if !check_mode && db.group_lookup(group).is_none() {
            return Err(ModuleError::new(format!("Group {group} does not exist")));
        }
        argv.extend([s("-g"), group.clone()]);
        fields.push(format!("group {group}"));
    } else if db.group_by_name(name).is_some() {
        // useradd would try to create the user's own group and fail.
        argv.push(s("-N"));
    }
    if let Some(groups) = &spec.groups {
        if !groups.is_empty() {
            let mut set: Vec<String> = Vec::new();
            for g in groups.split(',').map(str::trim).filter(|g| !g.is_empty()) {
                if !check_mode && db.group_lookup(g).is_none() {
                    return Err(ModuleError::new(format!("Group {g} does not exist")));
                }
                if !set.iter().any(|x| x == g) {
                    set.push(g.to_string());
                }
            }
            argv.extend([s("-G"), set.join(",")]);
            fields.push(format!("groups {}", set.join(",")));
        }
    }
    if let Some(c) = &spec.comment {
        argv.extend([s("-c"), c.clone()]);
        fields.push(format!("comment {c:?}"));
    }
    if let Some(h) = &spec.home {
        if spec.create_home {
            let parent = parent_of(h);
            if !parent.is_empty() && !fs.is_dir(&parent) {
                steps.push(Step::MakeParent(PathBuf::from(parent)));
            }
        }
        argv.extend([s("-d"), h.clone()]);
        fields.push(format!("home {h}"));
    }
    if let Some(sh) = &spec.shell {
        argv.extend([s("-s"), sh.clone()]);
        fields.push(format!("shell {sh}"));
    }
    if let Some(exp) = spec.expires {
        argv.push(s("-e"));
        if exp < 0.0 {
            argv.push(s(""));
        } else {
            let date = date_of_days((exp / 86400.0).floor() as i64);
            fields.push(format!("expires {date}"));
            argv.push(date);
        }
    }
    if let Some(pw) = &spec.password {
        argv.push(s("-p"));
        if spec.password_lock == Some(true) {
            argv.push(format!("!{pw}"));
        } else {
            argv.push(pw.clone());
        }
        fields.push(s("password set"));
    }
    if spec.create_home {
        argv.push(s("-m"));
        if let Some(k) = &spec.skeleton {
            argv.extend([s("-k"), k.clone()]);
        }
    } else {
        argv.push(s("-M"));
    }
    if spec.system {
        argv.push(s("-r"));
        fields.push(s("system"));
    }
    argv.push(s(name));
    steps.push(Step::Tool(Tool::new(argv)));
    // Ansible runs these once the user exists; in check mode it stops before.
    if !check_mode {
        if let Some((argv, more)) = chage(spec, None) {
            fields.extend(more);
            steps.push(Step::Tool(Tool::new(argv)));
        }
        if let Some(key) = spec.ssh_key.as_ref().and_then(|k| k.plan(None)) {
            fields.push(key.summary());
            steps.push(Step::SshKeygen(key));
        }
    }
    Ok(vec![(account(AccountOp::Create, name, fields), steps)])
}

/// The registered result, as ansible-core's `user` module returns it.
fn outcome(spec: &UserSpec, db: &Db, existed: bool, changed: bool, check_mode: bool) -> Outcome {
    let mut out = Outcome::default()
        .with("name", spec.name.clone())
        .with("state", if spec.present { "present" } else { "absent" });
    if !spec.present {
        if existed && changed {
            if check_mode {
                return Outcome::default();
            }
            out = out.with("force", spec.force).with("remove", spec.remove);
        }
        return out;
    }
    if existed {
        out = out
            .with("append", spec.append)
            .with("move_home", spec.move_home);
    } else if changed {
        if check_mode {
            // Ansible stops before creating: nothing else is reported.
            return Outcome::default();
        }
        out = out
            .with("system", spec.system)
            .with("create_home", spec.create_home);
    }
    if spec.password.is_some() {
        out = out.with("password", "NOT_LOGGING_PASSWORD");
    }
    if let Some(u) = db.user(&spec.name) {
        out = out
            .with("uid", u.uid)
            .with("group", u.gid)
            .with("comment", u.gecos.clone())
            .with("home", u.home.clone())
            .with("shell", u.shell.clone());
        if let Some(g) = &spec.groups {
            out = out.with("groups", g.clone());
        }
    }
    out
}

struct UserResource {
    spec: UserSpec,
    etc: Etc,
    host: Arc<HostState>,
    check_mode: bool,
}

impl Resource for UserResource {
    fn check(&self) -> Result<Check, ModuleError> {
        let db = self.host.accounts(&self.etc)?;
        let planned = plan(&self.spec, &db, &RealFs, self.check_mode)?;
        let existed = db.user(&self.spec.name).is_some();
        let mut outcome = outcome(
            &self.spec,
            &db,
            existed,
            !planned.is_empty(),
            self.check_mode,
        );
        if let (Some(key), Some(u)) = (&self.spec.ssh_key, db.user(&self.spec.name)) {
            if self.spec.present {
                outcome = key.report(&u.home, outcome);
            }
        }
        Ok(Check::new(with_steps(planned), outcome))
    }

    fn apply(&self, check: Check) -> Result<Outcome, ModuleError> {
        // The check found the user unless it planned to create it.
        let existed = !check.changes.iter().any(|c| {
            matches!(
                c,
                Change::Account {
                    op: AccountOp::Create,
                    ..
                }
            )
        });
        let printed = run_steps(&check.changes, &|step| {
            // The account's ids and home, now that it exists.
            let db = self.etc.read()?;
            let Some(u) = db.user(&self.spec.name) else {
                return Err(ModuleError::new(format!(
                    "failed to look up user name: {}",
                    self.spec.name
                )));
            };
            match step {
                Step::CreateHome { path, skeleton } => {
                    create_home(path, skeleton, self.etc.home_mode(), u.uid, u.gid)?;
                    Ok(Default::default())
                }
                Step::SshKeygen(key) => key.run(&u.home, u.uid, u.gid),
                _ => Ok(Default::default()),
            }
        })?;
        // What the account is now, for the registered result.
        let db = self.etc.read()?;
        let mut out = outcome(&self.spec, &db, existed, true, false);
        if let (Some(key), Some(u)) = (&self.spec.ssh_key, db.user(&self.spec.name)) {
            if self.spec.present {
                out = key.report(&u.home, out);
            }
        }
        Ok(printed.report(out))
    }

    fn owns(&self) -> Vec<Owned> {
        ["passwd", "shadow", "group"]
            .iter()
            .map(|f| Owned::Path(self.etc.dir.join(f)))
            .collect()
    }
}

/// Ansible's `create_homedir` + `chown_homedir`: the skeleton copied (symlinks kept), the home's
/// mode set, everything but symlinks owned by the user.
fn create_home(
    path: &Path,
    skeleton: &Path,
    mode: u32,
    uid: u32,
    gid: u32,
) -> Result<(), ModuleError> {
    use std::os::unix::fs::PermissionsExt;
    let err = |e: std::io::Error| ModuleError::new(e.to_string());
    if skeleton.exists() && skeleton != Path::new("/dev/null") {
        copy_tree(skeleton, path).map_err(err)?;
    } else {
        std::fs::create_dir_all(path).map_err(err)?;
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(err)?;
    chown_tree(path, uid, gid).map_err(err)
}

fn copy_tree(src: &Path, dst: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dst)?;
    let mut entries: Vec<_> = std::fs::read_dir(src)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let from = e.path();
        let to = dst.join(e.file_name());
        let ft = e.file_type()?;
        if ft.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&from)?, &to)?;
        } else if ft.is_dir() {
            copy_tree(&from, &to)?;
            let m = std::fs::metadata(&from)?.permissions().mode();
            std::fs::set_permissions(&to, std::fs::Permissions::from_mode(m & 0o7777))?;
        } else {
            std::fs::copy(&from, &to)?;
        }
    }
    Ok(())
}

fn chown_tree(path: &Path, uid: u32, gid: u32) -> std::io::Result<()> {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid))?;
    if std::fs::symlink_metadata(path)?.is_dir() {
        for e in std::fs::read_dir(path)? {
            let e = e?;
            if e.file_type()?.is_symlink() {
                continue;
            }
            chown_tree(&e.path(), uid, gid)?;
        }
    }
    Ok(())
}

pub(crate) mod ssh_key;
#[cfg(test)]
mod tests;
