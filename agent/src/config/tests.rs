use super::*;
use minijinja::Value;

const NAME: &str = "/etc/gitops-agent/config.yml";

fn parse(text: &str) -> Config {
    Config::from_str(NAME, text).unwrap_or_else(|e| panic!("{e}"))
}

fn error(text: &str) -> String {
    Config::from_str(NAME, text).unwrap_err().to_string()
}

const FULL: &str = r#"
repo: https://git.example.com/infra/fleet.git
branch: fleet/{fqdn}
playbook: site.yml
extra_vars:
  env: prod
  ports: [80, 443]
interval: 5m
splay: 1h30m
ssh_key: keys/id_ed25519
known_hosts: /etc/gitops-agent/known_hosts
http:
  credentials_file: /etc/gitops-agent/http-credentials
  ca_file: ca/private.pem
signing:
  allowed_signers: /etc/gitops-agent/allowed_signers
  openpgp_keys:
    - /etc/gitops-agent/a.asc
    - b.asc
  require: true
allow_rollback: yes
status:
  repo: git@git.example.com:infra/status.git
  branch: status/{machine_id}
  heartbeat: 12h
  enabled: false
state_dir: /var/lib/agent-test
"#;

#[test]
fn every_key_is_parsed() {
    let c = parse(FULL);
    assert_eq!(
        c.repo.as_ref().unwrap().as_str(),
        "https://git.example.com/infra/fleet.git"
    );
    assert_eq!(c.repo.as_ref().unwrap().kind(), RepoKind::Https);
    assert_eq!(c.branch.as_str(), "fleet/{fqdn}");
    assert_eq!(c.playbook.as_deref(), Some("site.yml"));
    assert_eq!(c.extra_vars["env"], Value::from("prod"));
    assert_eq!(c.extra_vars["ports"], Value::from(vec![80, 443]));
    assert_eq!(c.interval, Duration::from_secs(300));
    assert_eq!(c.splay, Duration::from_secs(5400));
    // Relative paths are resolved against the file's directory.
    assert_eq!(
        c.ssh_key.as_deref(),
        Some(Path::new("/etc/gitops-agent/keys/id_ed25519"))
    );
    assert_eq!(
        c.known_hosts.as_deref(),
        Some(Path::new("/etc/gitops-agent/known_hosts"))
    );
    assert_eq!(
        c.http.credentials_file.as_deref(),
        Some(Path::new("/etc/gitops-agent/http-credentials"))
    );
    assert_eq!(
        c.http.ca_file.as_deref(),
        Some(Path::new("/etc/gitops-agent/ca/private.pem"))
    );
    assert_eq!(
        c.signing.allowed_signers.as_deref(),
        Some(Path::new("/etc/gitops-agent/allowed_signers"))
    );
    assert_eq!(
        c.signing.openpgp_keys,
        vec![
            PathBuf::from("/etc/gitops-agent/a.asc"),
            PathBuf::from("/etc/gitops-agent/b.asc")
        ]
    );
    assert!(c.signing.require);
    assert!(c.allow_rollback);
    let status_repo = c.status.repo.as_ref().unwrap();
    assert_eq!(status_repo.kind(), RepoKind::Scp);
    assert_eq!(c.status_repo(), Some(status_repo));
    assert_eq!(c.status.branch.as_str(), "status/{machine_id}");
    assert_eq!(c.status.heartbeat, Duration::from_secs(12 * 3600));
    assert!(!c.status.enabled);
    assert_eq!(c.state_dir, PathBuf::from("/var/lib/agent-test"));
    c.validate().unwrap();
    assert_eq!(c.location_of("status.heartbeat").unwrap().line, 25);
}

#[test]
fn defaults() {
    for text in [
        "",
        "# nothing\n",
        "---\n",
        "status:\nhttp:\nsigning:\nsplay:\n",
    ] {
        let c = parse(text);
        let d = Config::default();
        assert_eq!(c.repo, None);
        assert_eq!(c.branch.as_str(), "hosts/{hostname}");
        assert_eq!(c.playbook, None);
        assert!(c.extra_vars.is_empty());
        assert_eq!(c.interval.to_string(), "1m");
        assert_eq!(c.interval, Duration::from_secs(60));
        assert_eq!(c.splay, Duration::from_secs(30));
        assert_eq!(c.ssh_key, None);
        assert_eq!(c.known_hosts, None);
        assert_eq!(c.http, d.http);
        assert_eq!(c.signing, SigningConfig::default());
        assert!(!c.signing.require);
        assert!(!c.allow_rollback);
        assert_eq!(c.status.repo, None);
        assert_eq!(c.status.branch.as_str(), "status/{hostname}");
        assert_eq!(c.status.heartbeat, Duration::from_secs(86_400));
        assert!(c.status.enabled);
        assert_eq!(c.state_dir, PathBuf::from("/var/lib/gitops-agent"));
    }
    // Without a repo, nothing to pull from.
    let e = parse("").validate().unwrap_err().to_string();
    assert!(e.contains("`repo`") && e.contains("--repo"), "{e}");
}

#[test]
fn durations() {
    for (text, secs) in [
        ("30s", 30),
        ("5m", 300),
        ("24h", 86_400),
        ("1h30m", 5_400),
        ("90", 90),
    ] {
        let c = parse(&format!("interval: {text}\n"));
        assert_eq!(c.interval, Duration::from_secs(secs), "{text}");
    }
    assert_eq!(parse("splay: '45'").splay, Duration::from_secs(45));
    let e = error("repo: /srv/x\n\ninterval: 5x\n");
    assert!(
        e.starts_with(&format!("{NAME}:3: key `interval`: invalid duration `5x`")),
        "{e}"
    );
    let e = error("status:\n  heartbeat: -5\n");
    assert!(
        e.starts_with(&format!("{NAME}:2: key `status.heartbeat`")),
        "{e}"
    );
    let e = error("splay: 1.5\n");
    assert!(e.contains(":1: key `splay`: expected a duration"), "{e}");
    // Zero is parsed, refused by validate for `interval`, allowed for `splay`.
    let c = parse("repo: /srv/x\nsplay: 0\ninterval: 0s\n");
    let e = c.validate().unwrap_err().to_string();
    assert!(
        e.contains(":3: key `interval`: must be more than 0s"),
        "{e}"
    );
}

#[test]
fn unknown_key_is_an_error_with_line_and_suggestion() {
    let e = error("repo: /srv/x\nbranch: main\n\n\n\n\nintervall: 5m\n");
    assert_eq!(
        e,
        "/etc/gitops-agent/config.yml:7: key `intervall`: unknown key (did you mean `interval`?)"
    );
    let e = error("status:\n  heartbeet: 1h\n");
    assert!(
        e.contains(":2: key `status.heartbeet`: unknown key (did you mean `heartbeat`?)"),
        "{e}"
    );
    // Right key, wrong section.
    let e = error("heartbeat: 1h\n");
    assert!(e.contains("did you mean `status.heartbeat`?"), "{e}");
    let e = error("signing:\n  interval: 1h\n");
    assert!(e.contains("did you mean `interval`?"), "{e}");
    // Nothing close: the known keys are listed.
    let e = error("frobnicate: 1\n");
    assert!(e.contains("unknown key (known: repo, branch"), "{e}");
    // Credentials are pointed to the credentials file.
    let e = error("http:\n  password: hunter2\n");
    assert!(e.contains(":2: key `http.password`") && e.contains("credentials_file"));
    // Every error at once.
    let e = Config::from_str(NAME, "a: 1\nb: 2\ninterval: x\n").unwrap_err();
    assert_eq!(e.errors().len(), 3, "{e}");
}

#[test]
fn wrong_types_are_errors_with_line() {
    let e = error("repo: /srv/x\ninterval: [1]\n");
    assert!(
        e.starts_with(&format!("{NAME}:2: key `interval`: expected a duration")),
        "{e}"
    );
    assert!(e.ends_with("found a list"), "{e}");
    for (text, key, line) in [
        ("repo: [a]\n", "repo", 1),
        ("allow_rollback: maybe\n", "allow_rollback", 1),
        ("status: yes\n", "status", 1),
        ("signing:\n  require: 1\n", "signing.require", 2),
        (
            "signing:\n  openpgp_keys: a.asc\n",
            "signing.openpgp_keys",
            2,
        ),
        (
            "signing:\n  openpgp_keys: [a.asc, 3]\n",
            "signing.openpgp_keys",
            2,
        ),
        ("extra_vars: [a]\n", "extra_vars", 1),
        ("extra_vars:\n  bad-name: 1\n", "extra_vars.bad-name", 2),
        ("branch: 12\n", "branch", 1),
    ] {
        let e = error(text);
        assert!(e.contains(&format!(":{line}: key `{key}`")), "{text}: {e}");
    }
    let e = error("repo: /x\nrepo: /y\n");
    assert!(e.contains("duplicate key"), "{e}");
    let e = error("- a\n");
    assert!(e.contains(":1: the configuration must be a mapping"), "{e}");
    let e = error("repo: [\n");
    assert!(e.contains("invalid YAML"), "{e}");
}

#[test]
fn repository_urls() {
    let base = Path::new("/etc/gitops-agent");
    for (url, kind) in [
        ("https://git.example.com/infra/fleet.git", RepoKind::Https),
        ("https://token@git.example.com:8443/fleet", RepoKind::Https),
        ("http://10.0.0.1/fleet.git", RepoKind::Http),
        (
            "ssh://git@git.example.com:2222/infra/fleet.git",
            RepoKind::Ssh,
        ),
        ("ssh://[::1]:22/fleet.git", RepoKind::Ssh),
        ("git@git.example.com:infra/fleet.git", RepoKind::Scp),
        ("host:fleet.git", RepoKind::Scp),
        ("file:///srv/git/fleet.git", RepoKind::File),
        ("/srv/git/fleet.git", RepoKind::Path),
    ] {
        let r = RepoUrl::parse(url, base).unwrap_or_else(|e| panic!("{url}: {e}"));
        assert_eq!(r.kind(), kind, "{url}");
        assert_eq!(r.as_str(), url);
    }
    let r = RepoUrl::parse("../git/./fleet.git", base).unwrap();
    assert_eq!(r.kind(), RepoKind::Path);
    assert_eq!(r.as_str(), "/etc/gitops-agent/../git/fleet.git");
    assert!(r.is_local());
    let r = RepoUrl::parse("./a:b", base).unwrap();
    assert_eq!(r.as_str(), "/etc/gitops-agent/a:b");
    let cwd = std::env::current_dir().unwrap();
    let r: RepoUrl = "fleet".parse().unwrap();
    assert_eq!(Path::new(r.as_str()), cwd.join("fleet"));
    for (bad, why) in [
        ("", "empty"),
        ("git://host/fleet", "unsupported scheme"),
        ("ftp://host/fleet", "unsupported scheme"),
        ("https://host", "no repository path"),
        ("https:///fleet", "no host"),
        ("https://user:secret@host/fleet", "password"),
        ("ssh://git:pw@host/fleet", "password"),
        ("https://host:99999/fleet", "invalid port"),
        ("file://srv/git", "absolute path"),
        ("git@host:", "no repository path"),
        (":fleet", "no host"),
        ("a b", "space"),
    ] {
        let e = RepoUrl::parse(bad, base).unwrap_err().to_string();
        assert!(e.contains(why), "{bad}: {e}");
    }
    let e = error("repo: https://u:p@h/x\n");
    assert!(e.contains(":1: key `repo`") && e.contains("credentials_file"));
}

#[test]
fn branch_expansion() {
    let ids = HostIds {
        hostname: "web1".into(),
        fqdn: "web1.example.com".into(),
        machine_id: "0123abcd".into(),
    };
    let c = parse("");
    assert_eq!(c.branch_name(&ids), "hosts/web1");
    assert_eq!(c.status_branch_name(&ids), "status/web1");
    let t = BranchTemplate::new("x/{fqdn}/{machine_id}-{hostname}").unwrap();
    assert_eq!(t.expand(&ids), "x/web1.example.com/0123abcd-web1");
    assert_eq!(BranchTemplate::new("main").unwrap().expand(&ids), "main");
    for (bad, why) in [
        ("hosts/{host}", "unknown placeholder `{host}`"),
        ("hosts/{hostname", "unmatched `{`"),
        ("hosts/}", "unmatched `}`"),
        ("hosts/a b", "space"),
        ("hosts/../x", ".."),
        ("/hosts", "empty path component"),
        ("hosts/x.lock", ".lock"),
        ("refs/heads/main", "refs/heads/"),
        ("", "empty"),
    ] {
        let e = BranchTemplate::new(bad).unwrap_err().to_string();
        assert!(e.contains(why), "{bad}: {e}");
    }
    let e = error("\nbranch: hosts/{nodename}\n");
    assert!(e.contains(":2: key `branch`: unknown placeholder"), "{e}");
    // From the facts of this machine.
    let ids = HostIds::gather();
    assert!(!ids.hostname.is_empty());
    assert_eq!(c.branch_name(&ids), format!("hosts/{}", ids.hostname));
}

#[test]
fn overrides_beat_the_file() {
    let mut c = parse(FULL);
    let mut extra = RawVars::new();
    extra.insert("env".into(), Value::from("staging"));
    extra.insert("new".into(), Value::from(1));
    let mut o = ConfigOverrides::from_pairs(&[
        ("repo", "file:///srv/git/other.git"),
        ("branch", "hosts/{hostname}"),
        ("interval", "10s"),
        ("splay", "0s"),
        ("ssh_key", "/root/.ssh/id"),
        ("known_hosts", "kh"),
        ("http.credentials_file", "/run/creds"),
        ("http.ca_file", "/run/ca.pem"),
        ("signing.allowed_signers", "/x/allowed"),
        ("signing.openpgp_keys", "/x/k.asc"),
        ("signing.require", "false"),
        ("allow_rollback", "false"),
        ("status.branch", "st/{hostname}"),
        ("status.heartbeat", "1m"),
        ("status.enabled", "true"),
        ("state_dir", "/tmp/state"),
    ])
    .unwrap();
    o.playbook(Some("local.yml".into()));
    o.extra_vars(extra);
    c.apply(o);
    assert_eq!(
        c.repo.as_ref().unwrap().as_str(),
        "file:///srv/git/other.git"
    );
    assert_eq!(c.branch.as_str(), "hosts/{hostname}");
    assert_eq!(c.playbook.as_deref(), Some("local.yml"));
    assert_eq!(c.extra_vars["env"], Value::from("staging"));
    assert_eq!(c.extra_vars["ports"], Value::from(vec![80, 443]));
    assert_eq!(c.extra_vars["new"], Value::from(1));
    assert_eq!(c.interval, Duration::from_secs(10));
    assert_eq!(c.splay, Duration::ZERO);
    assert_eq!(c.ssh_key, Some(PathBuf::from("/root/.ssh/id")));
    // Relative paths on the command line are resolved against the current directory.
    let cwd = std::env::current_dir().unwrap();
    assert_eq!(c.known_hosts, Some(cwd.join("kh")));
    assert_eq!(c.http.credentials_file, Some(PathBuf::from("/run/creds")));
    assert_eq!(c.http.ca_file, Some(PathBuf::from("/run/ca.pem")));
    assert_eq!(c.signing.allowed_signers, Some(PathBuf::from("/x/allowed")));
    assert_eq!(c.signing.openpgp_keys, vec![PathBuf::from("/x/k.asc")]);
    assert!(!c.signing.require);
    assert!(!c.allow_rollback);
    // Not overridden: the file's value stays.
    assert_eq!(c.status_repo().unwrap().kind(), RepoKind::Scp);
    assert_eq!(c.status.branch.as_str(), "st/{hostname}");
    assert_eq!(c.status.heartbeat, Duration::from_secs(60));
    assert!(c.status.enabled);
    assert_eq!(c.state_dir, PathBuf::from("/tmp/state"));
    // Overridden keys no longer point into the file; the others still do.
    assert_eq!(c.location_of("interval"), None);
    assert_eq!(c.definition("interval"), Definition::CommandLine);
    assert_eq!(c.location_of("status.repo").unwrap().line, 23);
    assert!(matches!(c.definition("status.repo"), Definition::File(_)));
    assert_eq!(c.definition("drift"), Definition::Default);

    // An empty override changes nothing; status.repo follows repo by default.
    let mut c = parse("repo: /srv/a\n");
    c.apply(ConfigOverrides::default());
    assert_eq!(c.repo.as_ref().unwrap().as_str(), "/srv/a");
    c.apply(ConfigOverrides::from_pairs(&[("repo", "/srv/b")]).unwrap());
    assert_eq!(c.status_repo().unwrap().as_str(), "/srv/b");
    c.validate().unwrap();
}

#[test]
fn validate_checks_what_keys_cannot_alone() {
    let e = parse("repo: /srv/x\nsigning:\n  require: true\n")
        .validate()
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(":3: key `signing.require`: `require: true` needs keys"),
        "{e}"
    );
    parse("repo: /srv/x\nsigning:\n  require: true\n  openpgp_keys: [k.asc]\n")
        .validate()
        .unwrap();
    let e = parse("repo: /srv/x\nbranch: main\nstatus:\n  branch: main\n")
        .validate()
        .unwrap_err()
        .to_string();
    assert!(e.contains(":4: key `status.branch`"), "{e}");
    parse("repo: /srv/x\nbranch: main\nstatus:\n  repo: /srv/s\n  branch: main\n")
        .validate()
        .unwrap();
    let e = error("playbook: ../x.yml\n");
    assert!(e.contains(":1: key `playbook`"), "{e}");
    let mut c = parse("repo: /srv/x\n");
    let mut o = ConfigOverrides::default();
    o.playbook(Some("/abs.yml".into()));
    c.apply(o);
    let e = c.validate().unwrap_err().to_string();
    assert!(e.starts_with("key `playbook`: `/abs.yml`"), "{e}");
}

#[test]
fn load_from_disk() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yml");
    let e = Config::load(&path).unwrap_err();
    assert!(matches!(e, ConfigError::Read { .. }), "{e}");
    assert_eq!(Config::load_or_default(&path).unwrap(), Config::default());
    std::fs::write(&path, "repo: fleet\nintervall: 1\n").unwrap();
    let e = Config::load_or_default(&path).unwrap_err().to_string();
    assert_eq!(
        e,
        format!(
            "{}:2: key `intervall`: unknown key (did you mean `interval`?)",
            path.display()
        )
    );
    std::fs::write(&path, "repo: fleet\n").unwrap();
    let c = Config::load(&path).unwrap();
    assert_eq!(
        Path::new(c.repo.unwrap().as_str()),
        dir.path().join("fleet")
    );
}

#[test]
fn example_config_parses_and_documents_every_key() {
    let c = parse(EXAMPLE_CONFIG);
    assert_eq!(
        c,
        Config {
            file: c.file.clone(),
            ..Config::default()
        }
    );
    // Uncommented, every setting line parses and every key of the schema is there.
    let uncommented: String = EXAMPLE_CONFIG
        .lines()
        .map(|l| match l.strip_prefix('#') {
            Some(rest)
                if rest.starts_with(|ch: char| ch.is_ascii_lowercase())
                    || (rest.starts_with("  ") && rest[2..].starts_with(char::is_alphanumeric)) =>
            {
                rest
            }
            _ => l,
        })
        .map(|l| format!("{l}\n"))
        .collect();
    let c = parse(&uncommented);
    c.validate().unwrap();
    // Every key of the schema is there, with the schema's default where it has one, written
    // as the schema writes it.
    let lines: Vec<&str> = uncommented.lines().collect();
    for key in keys::KEYS {
        let loc = c
            .location_of(key.name)
            .unwrap_or_else(|| panic!("`{}` is not in packaging/config.yml", key.name));
        let Some(default) = key.default else { continue };
        let line = lines[loc.line as usize - 1];
        let shown = line.split_once(':').map(|(_, v)| v.trim());
        assert_eq!(
            shown,
            Some(default),
            "packaging/config.yml:{}: `{}` is documented with another default than the schema's",
            loc.line,
            key.name
        );
    }
}

#[test]
fn drift_policy() {
    let c = Config::from_str("c.yml", "drift: off\n").unwrap();
    assert_eq!(c.drift, DriftPolicy::Off);
    let c = Config::from_str("c.yml", "drift: report\n").unwrap();
    assert_eq!(c.drift, DriftPolicy::Report);
    assert_eq!(Config::default().drift, DriftPolicy::Correct);
    assert!(Config::from_str("c.yml", "drift: fix\n").is_err());
}

#[test]
fn http_credentials() {
    let c = HttpCredentials::parse("c", "# token\nusername = fleet\n\npassword=s3cr=t\n").unwrap();
    assert_eq!(c.username, "fleet");
    assert_eq!(c.password, "s3cr=t");
    assert!(!format!("{c:?}").contains("s3cr"));
    let e = HttpCredentials::parse("c", "username=a\ntoken=b\n").unwrap_err();
    assert!(e.to_string().starts_with("c:2: unknown key `token`"), "{e}");
    let e = HttpCredentials::parse("c", "username=a\n").unwrap_err();
    assert!(e.to_string().contains("no `password=`"), "{e}");
    let e = HttpCredentials::parse("c", "password=a\npassword=b\nusername=u").unwrap_err();
    assert!(e.to_string().contains("c:2: `password` given twice"), "{e}");

    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("creds");
    std::fs::write(&path, "username=u\npassword=p\n").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let e = HttpCredentials::load(&path).unwrap_err().to_string();
    assert!(e.contains("chmod 600"), "{e}");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(HttpCredentials::load(&path).unwrap().password, "p");
}

#[test]
fn every_key_is_bound_to_a_field_and_its_default_parses() {
    // A value of each kind, for the keys without a default.
    let example = |kind: keys::Kind| match kind {
        keys::Kind::Repo => "/srv/git/fleet.git",
        keys::Kind::Branch => "hosts/x",
        keys::Kind::Playbook => "site.yml",
        keys::Kind::Duration => "1h 30m",
        keys::Kind::Drift => "report",
        keys::Kind::Reboot => "allow",
        keys::Kind::Path | keys::Kind::Paths => "/etc/x",
        keys::Kind::Bool => "true",
        keys::Kind::Vars => "",
        keys::Kind::Bridge => "auto",
        keys::Kind::Names => "community.general.ini_file",
    };
    for key in keys::KEYS {
        let mut c = Config::empty();
        let value = match key.kind {
            keys::Kind::Vars => super::value::Value::Vars(RawVars::new()),
            kind => super::value::Value::parse(
                kind,
                key.default.unwrap_or(example(kind)),
                Path::new("/"),
            )
            .unwrap_or_else(|e| panic!("{}: {e}", key.name)),
        };
        assert!(c.store(key.name, value), "`{}` has no field", key.name);
        assert!(key.section().is_empty() || keys::names_in("").contains(&key.section()));
        assert!(!key.doc.is_empty(), "`{}` has no help", key.name);
    }
    // The defaults are the schema's.
    let d = Config::default();
    assert_eq!(d.interval, Duration::from_secs(60));
    assert_eq!(d.enforce, Duration::from_secs(30 * 60));
    assert_eq!(d.drift, DriftPolicy::Correct);
    assert!(d.status.enabled);
    assert_eq!(d.definition("interval"), Definition::Default);
}

/// The command line and the schema agree: every key has its flag on `run`, and on `converge`
/// unless it is about the daemon only; every other flag of those commands is not a key.
#[test]
fn every_key_has_a_flag_and_every_flag_a_key() {
    use clap::CommandFactory;
    let cli = crate::cli::Cli::command();
    let longs = |name: &str| -> Vec<String> {
        let sub = cli.find_subcommand(name).unwrap();
        sub.get_arguments()
            .filter_map(|a| a.get_long().map(str::to_string))
            .collect()
    };
    let (converge, run) = (longs("converge"), longs("run"));
    for key in keys::KEYS {
        let flag = key.flag.name();
        if key.scope == keys::Scope::All {
            assert!(
                converge.contains(&flag.to_string()),
                "converge has no --{flag} for `{}`",
                key.name
            );
        }
        // -e's values are parsed by the one-shot converge only.
        if key.kind != keys::Kind::Vars {
            assert!(
                run.contains(&flag.to_string()),
                "run has no --{flag} for `{}`",
                key.name
            );
        }
    }
    let not_keys = [
        "config",
        "playbook-dir",
        "host-name",
        "check",
        "diff",
        "tags",
        "skip-tags",
        "format",
        "no-wait",
        "force",
        "help",
        "verbose",
        "quiet",
    ];
    for flag in converge.iter().chain(&run) {
        let is_key = keys::KEYS.iter().any(|k| k.flag.name() == flag);
        assert!(
            is_key || not_keys.contains(&flag.as_str()),
            "--{flag} is no key of the schema"
        );
    }
    let names: Vec<&str> = keys::KEYS.iter().map(|k| k.flag.name()).collect();
    for (i, n) in names.iter().enumerate() {
        assert!(!names[i + 1..].contains(n), "--{n} is the flag of two keys");
    }
}

#[test]
fn a_flag_names_itself_in_its_error() {
    let e = ConfigOverrides::from_pairs(&[("status.heartbeat", "soon")])
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("--status-heartbeat: invalid duration `soon`"),
        "{e}"
    );
    let e = ConfigOverrides::from_pairs(&[("drift", "fix")])
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("--drift: `fix`"), "{e}");
    let e = ConfigOverrides::from_pairs(&[("repo", "https://u:p@h/x")])
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("--repo: ") && e.contains("password"), "{e}");
    // Repeated: the list grows.
    let mut c = Config::default();
    c.apply(
        ConfigOverrides::from_pairs(&[
            ("signing.openpgp_keys", "/a"),
            ("signing.openpgp_keys", "/b"),
        ])
        .unwrap(),
    );
    assert_eq!(
        c.signing.openpgp_keys,
        vec![PathBuf::from("/a"), PathBuf::from("/b")]
    );
}

#[test]
fn parse_errors_are_typed_with_the_messages_users_see() {
    use std::error::Error as _;
    let base = Path::new("/etc");
    // Whole messages, as they were when the parsers returned strings (escaped braces and
    // continued lines are where a typed message would drift).
    assert_eq!(
        BranchTemplate::new("hosts/{host}").unwrap_err().to_string(),
        "unknown placeholder `{host}` in branch `hosts/{host}` (known: {hostname}, {fqdn}, \
         {machine_id})"
    );
    assert_eq!(
        BranchTemplate::new("refs/heads/x").unwrap_err(),
        BranchError::FullRef {
            text: "refs/heads/x".into()
        }
    );
    assert_eq!(
        BranchTemplate::new("refs/heads/x").unwrap_err().to_string(),
        "`refs/heads/x`: write the branch name without `refs/heads/` (e.g. `hosts/{hostname}`)"
    );
    assert_eq!(
        BranchTemplate::new("a}").unwrap_err().to_string(),
        "unmatched `}` in `a}`"
    );
    assert_eq!(
        RepoUrl::parse("https://u:p@h/x", base)
            .unwrap_err()
            .to_string(),
        "repository URL `https://u:p@h/x`: a password in the URL is refused (it would end up in \
         logs and status reports); put credentials in the file named by \
         `http.credentials_file`, or use `ssh_key` for SSH"
    );
    assert_eq!(
        RepoUrl::parse("ftp://h/x", base).unwrap_err().to_string(),
        "repository URL `ftp://h/x`: unsupported scheme `ftp://` (use https://, http://, ssh://, \
         user@host:path, file:// or a path)"
    );
    assert_eq!(
        RepoUrl::parse("https://h:0/x", base).unwrap_err(),
        RepoUrlError::InvalidPort {
            url: "https://h:0/x".into(),
            port: "0".into()
        }
    );
    // A flag's error keeps the value's error as its source.
    let e = ConfigOverrides::from_pairs(&[("signing.require", "yes")]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "--require-signatures: `yes`: expected true or false"
    );
    let source = e.source().map(ToString::to_string);
    assert_eq!(source.as_deref(), Some("`yes`: expected true or false"));
    let e = ConfigOverrides::from_pairs(&[("nope", "x")]).unwrap_err();
    assert_eq!(e, OverrideError::UnknownKey("nope".into()));
    assert_eq!(e.to_string(), "unknown configuration key `nope`");
}
