//! The configuration schema: every key of `/etc/gitops-agent/config.yml`, defined once here —
//! its name, type, default, command-line flag and help text.
//!
//! Everything else follows from this table: the file reader (which keys exist, the "did you
//! mean" for the others), the defaults of [`super::Config`], the command-line flags
//! (`crate::cli::KeyFlags`, generated from it) and with them `--help`, the man pages and the
//! completions. Tests check `packaging/config.yml` against it (every key documented, with this
//! default).
//!
//! Plain data without `crate::` references: packaging/gen compiles this file together with
//! `cli.rs`.

/// The type of a key's value, which decides how the file and the command line are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A repository URL or a local path.
    Repo,
    /// A branch name with `{hostname}`, `{fqdn}`, `{machine_id}`.
    Branch,
    /// A path inside the repository.
    Playbook,
    /// A mapping of variable names to values.
    Vars,
    /// A duration (`30s`, `5m`, `1h30m`).
    Duration,
    /// `correct`, `report` or `off`.
    Drift,
    /// `allow` or `deny`.
    Reboot,
    /// A path on this host.
    Path,
    /// A list of paths on this host.
    Paths,
    /// true or false.
    Bool,
    /// `auto` or `off`: the bridge to the host's ansible-core.
    Bridge,
    /// A list of module names.
    Names,
}

/// How a key is given on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flag {
    /// `--NAME VALUE`.
    Value(&'static str),
    /// `--NAME VALUE`, repeatable: each one adds to the list.
    Repeated(&'static str),
    /// `--NAME` without a value sets the key to this boolean.
    Switch(&'static str, bool),
}

impl Flag {
    /// The long flag, without `--`.
    pub const fn name(self) -> &'static str {
        match self {
            Flag::Value(n) | Flag::Repeated(n) | Flag::Switch(n, _) => n,
        }
    }
}

/// Which commands take a key's flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// `converge` and `run`.
    All,
    /// Only `run`: the key is about the daemon's schedule or its watch.
    Daemon,
}

/// One key of the configuration.
#[derive(Debug, Clone, Copy)]
pub struct Key {
    /// Dotted: `status.heartbeat` is `heartbeat:` under `status:`.
    pub name: &'static str,
    pub kind: Kind,
    /// The default as written in the file; `None`: unset.
    pub default: Option<&'static str>,
    pub flag: Flag,
    pub scope: Scope,
    /// The flag's placeholder in `--help` (`--repo URL`).
    pub value_name: &'static str,
    /// One line for `--help` and the man page.
    pub doc: &'static str,
    /// The flag is declared by hand in `cli.rs` because local mode takes it too (`--playbook`,
    /// `-e`); the generated flags leave it out.
    pub shared: bool,
}

const fn key(name: &'static str, kind: Kind, flag: Flag, value_name: &'static str) -> Key {
    Key {
        name,
        kind,
        default: None,
        flag,
        scope: Scope::All,
        value_name,
        doc: "",
        shared: false,
    }
}

impl Key {
    const fn default(mut self, text: &'static str) -> Key {
        self.default = Some(text);
        self
    }
    const fn daemon(mut self) -> Key {
        self.scope = Scope::Daemon;
        self
    }
    const fn shared(mut self) -> Key {
        self.shared = true;
        self
    }
    const fn doc(mut self, doc: &'static str) -> Key {
        self.doc = doc;
        self
    }

    /// The section this key is under (`status` for `status.branch`), `""` at the top.
    pub fn section(&self) -> &'static str {
        self.name.rsplit_once('.').map_or("", |(s, _)| s)
    }

    /// The key's name inside its section (`branch` for `status.branch`).
    pub fn leaf(&self) -> &'static str {
        self.name.rsplit_once('.').map_or(self.name, |(_, k)| k)
    }
}

use Flag::{Repeated, Switch, Value};
use Kind::*;

/// The schema, in the order of `packaging/config.yml`.
pub const KEYS: &[Key] = &[
    key("repo", Repo, Value("repo"), "URL")
        .doc("Repository URL: https://, http://, ssh://, git@host:path, file:// or a path"),
    key("branch", Branch, Value("branch"), "BRANCH")
        .default("hosts/{hostname}")
        .doc("Branch to converge to; `{hostname}`, `{fqdn}`, `{machine_id}` expand"),
    key("playbook", Playbook, Value("playbook"), "FILE")
        .shared()
        .doc("Playbook file inside the repository. Default: the first of <fqdn>.yml, <hostname>.yml, local.yml"),
    key("inventory", Playbook, Value("inventory"), "FILE")
        .shared()
        .doc("Inventory file (INI or YAML) inside the repository. Default: ansible.cfg's `inventory`, else `localhost,` as ansible-pull"),
    key("extra_vars", Vars, Repeated("extra-vars"), "VARS")
        .shared()
        .doc("Extra variables, highest precedence (merged key by key over the file's)"),
    key("interval", Duration, Value("interval"), "DURATION")
        .default("60s")
        .daemon()
        .doc("How often the daemon polls the host branch"),
    key("splay", Duration, Value("splay"), "DURATION")
        .default("30s")
        .daemon()
        .doc("Up to this much is added to each wait (a fixed share per host)"),
    key("enforce", Duration, Value("enforce"), "DURATION")
        .default("30m")
        .daemon()
        .doc("Re-converge the applied commit at least this often (0s: never)"),
    key("drift", Drift, Value("drift"), "POLICY")
        .default("correct")
        .daemon()
        .doc("What the daemon does about drift: correct, report or off (no watch)"),
    key("reboot", Reboot, Value("reboot"), "POLICY")
        .default("deny")
        .doc("Reboot the host after a run whose `reboot` task ran (allow), or only record that a reboot is owed (deny)"),
    key("metrics_file", Path, Value("metrics-file"), "PATH")
        .doc("node_exporter textfile collector file written after each converge"),
    key("ssh_key", Path, Value("ssh-key"), "PATH")
        .doc("SSH private key for ssh:// and scp-like URLs"),
    key("known_hosts", Path, Value("known-hosts"), "PATH")
        .doc("known_hosts file for SSH (host keys are always checked)"),
    key("http.credentials_file", Path, Value("http-credentials-file"), "PATH")
        .doc("File with `username=` and `password=` lines for http(s):// (never on the command line)"),
    key("http.ca_file", Path, Value("http-ca-file"), "PATH")
        .doc("PEM file of CA certificates trusted for https:// besides the system's (a private CA)"),
    key("signing.allowed_signers", Path, Value("allowed-signers"), "PATH")
        .doc("OpenSSH allowed_signers file: SSH-signed commits are verified against it"),
    key("signing.openpgp_keys", Paths, Repeated("openpgp-key"), "PATH")
        .doc("OpenPGP public key file (armored or binary); repeatable"),
    key("signing.require", Bool, Switch("require-signatures", true), "")
        .default("false")
        .doc("Refuse commits that are not signed by a trusted key"),
    key("allow_rollback", Bool, Switch("allow-rollback", true), "")
        .default("false")
        .doc("Apply a commit that does not descend from the last applied one (a force-push back)"),
    key("status.repo", Repo, Value("status-repo"), "URL")
        .doc("Repository the status commits go to. Default: the same as `repo`"),
    key("status.branch", Branch, Value("status-branch"), "BRANCH")
        .default("status/{hostname}")
        .doc("Status branch; placeholders as for `branch`"),
    key("status.heartbeat", Duration, Value("status-heartbeat"), "DURATION")
        .default("24h")
        .doc("A status commit is written at least this often, even when nothing changed"),
    key("status.enabled", Bool, Switch("no-status", false), "")
        .default("true")
        .doc("Do not write a status commit"),
    key("state_dir", Path, Value("state-dir"), "DIR")
        .default("/var/lib/gitops-agent")
        .doc("Where the agent keeps its repository, state and lock"),
    key("ansible_modules", Bridge, Value("ansible-modules"), "MODE")
        .default("off")
        .doc("auto: a module the agent does not implement runs as the host's own ansible-core module (off: the task fails)"),
    key("ansible_python", Path, Value("ansible-python"), "PATH")
        .doc("The python3 with ansible-core for `ansible_modules: auto`. Default: ansible-playbook's, else python3 on PATH"),
    key("ansible_modules_force", Names, Repeated("ansible-module-force"), "MODULE")
        .doc("Modules the agent has that still run through ansible-core (to compare both); repeatable"),
];

/// The key named `name` (dotted).
pub fn find(name: &str) -> Option<&'static Key> {
    KEYS.iter().find(|k| k.name == name)
}

/// The names a section holds (`""`: the top of the file, where sections are names too), in the
/// order of [`KEYS`].
pub fn names_in(section: &str) -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for k in KEYS {
        let name = if k.section() == section {
            k.leaf()
        } else if section.is_empty() {
            k.section()
        } else {
            continue;
        };
        if !out.contains(&name) {
            out.push(name);
        }
    }
    out
}

/// Every name a file can hold, dotted: the top level's, then each section's keys.
pub fn all_names() -> Vec<&'static str> {
    let top = names_in("");
    let dotted = KEYS.iter().map(|k| k.name).filter(|n| !top.contains(n));
    top.iter().copied().chain(dotted).collect()
}
