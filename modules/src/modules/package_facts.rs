//! `package_facts` (ansible.builtin): the installed packages as the fact `packages` (name ->
//! list of installed instances), shaped as ansible-core 2.19 shapes them. Ansible reads them
//! through python-apt and the rpm Python bindings; the agent reads the same databases with the
//! system's tools: `dpkg-query` (with `apt-cache policy` for each version's origin, the first
//! archive that has it, as python-apt's `origins[0]`) and `rpm -qa`. Other managers (apk,
//! pacman, pkg, portage, pkg_info) are refused. Changes nothing.

use std::process::Command;

use indexmap::IndexMap;
use minijinja::Value;

use super::query::{failed, query};
use super::stat::bin_path;
use crate::args::{ArgDef, ArgSpec, ArgType, Args};
use crate::resource::{Module, ModuleContext, ModuleError, Outcome, Resource};

pub struct PackageFactsModule;

static SPEC: ArgSpec = ArgSpec {
    module: "package_facts",
    args: &[
        ArgDef::new("manager", ArgType::List),
        ArgDef::new("strategy", ArgType::Str).choices(&["first", "all"]),
    ],
    free_form: false,
    mutually_exclusive: &[],
    required_one_of: &[],
};

/// Ansible's manager names, sorted as `auto` tries them, then the aliases.
const MANAGERS: &[&str] = &["apk", "apt", "pacman", "pkg", "pkg_info", "portage", "rpm"];
const ALIASES: &[(&str, &[&str])] = &[
    ("rpm", &["dnf", "dnf5", "yum", "zypper"]),
    ("pkg", &["pkg5", "pkgng"]),
    ("pkg_info", &["openbsd_pkg"]),
];
/// Each manager's programs whose presence makes Ansible try it.
fn manager_binaries(name: &str) -> &'static [&'static str] {
    match name {
        "apk" => &["apk"],
        "apt" => &["apt", "apt-get", "aptitude"],
        "pacman" => &["pacman"],
        "pkg" => &["pkg"],
        "pkg_info" => &["pkg_info"],
        "portage" => &["qlist"],
        "rpm" => &["rpm"],
        _ => &[],
    }
}

type Packages = IndexMap<String, Vec<Value>>;

impl Module for PackageFactsModule {
    fn spec(&self) -> &'static ArgSpec {
        &SPEC
    }
    fn prepare(&self, args: &Args, _ctx: &ModuleContext) -> Result<Box<dyn Resource>, ModuleError> {
        let requested: Vec<String> = args
            .list_str("manager")
            .unwrap_or_else(|| vec!["auto".into()])
            .into_iter()
            .map(|m| m.to_lowercase())
            .collect();
        let all = args.str("strategy").as_deref() == Some("all");
        query(move || package_facts(&requested, all))
    }
}

fn package_facts(requested: &[String], all: bool) -> Result<Outcome, ModuleError> {
    let mut managers: Vec<String> = requested.to_vec();
    let auto = managers.iter().any(|m| m == "auto");
    if auto {
        managers.retain(|m| m != "auto");
        managers.extend(MANAGERS.iter().map(|s| s.to_string()));
        managers.extend(
            ALIASES
                .iter()
                .flat_map(|(_, a)| a.iter().map(|s| s.to_string())),
        );
    }
    let known = |m: &str| MANAGERS.contains(&m) || ALIASES.iter().any(|(_, a)| a.contains(&m));
    let unsupported: Vec<&str> = managers
        .iter()
        .map(String::as_str)
        .filter(|m| !known(m))
        .collect();
    if !unsupported.is_empty() {
        return Ok(failed(format!(
            "Unsupported package managers requested: {}",
            unsupported.join(", ")
        )));
    }
    let mut packages: Packages = IndexMap::new();
    let mut found = 0;
    let mut seen: Vec<&str> = Vec::new();
    for m in &managers {
        if !all && found > 0 {
            break;
        }
        let name = ALIASES
            .iter()
            .find(|(_, a)| a.contains(&m.as_str()))
            .map(|(n, _)| *n)
            .or_else(|| MANAGERS.iter().copied().find(|n| n == m))
            .unwrap_or("");
        if seen.contains(&name) {
            continue;
        }
        seen.push(name);
        if !manager_binaries(name).iter().any(|b| bin_path(b).is_some()) {
            continue;
        }
        let list = match name {
            "apt" => apt_packages()?,
            "rpm" => rpm_packages()?,
            other => {
                return Err(ModuleError::new(format!(
                    "package_facts: the `{other}` package manager is not supported by the agent \
                     (apt and rpm are)"
                )))
            }
        };
        if !list.is_empty() {
            found += 1;
            for (k, v) in list {
                packages.entry(k).or_default().extend(v);
            }
        }
    }
    if found == 0 {
        let listed = managers
            .iter()
            .map(|m| format!("'{m}'"))
            .collect::<Vec<_>>()
            .join(", ");
        return Ok(failed(format!(
            "Could not detect a supported package manager from the following list: [{listed}], \
             or the required Python library is not installed. Check warnings for details."
        )));
    }
    let packages = crate::vars::map_value(packages.into_iter().map(|(k, v)| (k, Value::from(v))));
    Ok(Outcome::default().with(
        "ansible_facts",
        crate::vars::map_value([("packages", packages)]),
    ))
}

fn run_tool(argv: &[&str]) -> Result<String, ModuleError> {
    let tool =
        bin_path(argv[0]).ok_or_else(|| ModuleError::new(format!("cannot find `{}`", argv[0])))?;
    let ran = crate::process::run(Command::new(tool).args(&argv[1..]).env("LC_ALL", "C"))?;
    if !ran.ok() {
        return Err(ModuleError::new(ran.failure()));
    }
    Ok(ran.stdout)
}

/// Installed packages from dpkg, named as python-apt names them (`pkg:arch` for a foreign
/// architecture), each with its origin from `apt-cache policy`.
fn apt_packages() -> Result<Packages, ModuleError> {
    let native = run_tool(&["dpkg", "--print-architecture"])?
        .trim()
        .to_string();
    let listing = run_tool(&[
        "dpkg-query",
        "-W",
        "-f",
        "${Package}\\t${Version}\\t${Architecture}\\t${Section}\\t${db:Status-Abbrev}\\n",
    ])?;
    let installed = parse_dpkg(&listing, &native);
    let names: Vec<&str> = installed.iter().map(|p| p.name.as_str()).collect();
    let (origins, sections) = if names.is_empty() || bin_path("apt-cache").is_none() {
        (IndexMap::new(), IndexMap::new())
    } else {
        let mut argv = vec!["apt-cache", "policy"];
        argv.extend(names.iter().copied());
        let per_package = run_tool(&argv)?;
        let files = run_tool(&["apt-cache", "policy"])?;
        // python-apt's section is the installed version's first record's (the archive's
        // when it has the version, which may differ from dpkg's).
        let pinned: Vec<String> = installed
            .iter()
            .map(|p| format!("{}={}", p.name, p.version))
            .collect();
        let mut argv = vec!["apt-cache", "show", "--no-all-versions"];
        argv.extend(pinned.iter().map(String::as_str));
        let records = run_tool(&argv)?;
        (
            installed_origins(&per_package, &file_origins(&files)),
            record_sections(&records, &native),
        )
    };
    let mut out: Packages = IndexMap::new();
    for mut p in installed {
        let origin = origins.get(&p.name).cloned().unwrap_or_default();
        if let Some(section) = sections.get(&(p.name.clone(), p.version.clone())) {
            p.section = section.clone();
        }
        let entry = crate::vars::map_value([
            ("name", Value::from(p.name.as_str())),
            ("version", Value::from(p.version)),
            ("arch", Value::from(p.arch)),
            ("category", Value::from(p.section)),
            ("origin", Value::from(origin)),
            ("source", Value::from("apt")),
        ]);
        out.entry(p.name).or_default().push(entry);
    }
    out.sort_keys();
    Ok(out)
}

#[derive(Debug, PartialEq)]
struct DpkgPackage {
    name: String,
    version: String,
    arch: String,
    section: String,
}

/// `dpkg-query` lines of installed packages (a current version: not `n`ot-installed nor
/// `c`onfig-files only).
fn parse_dpkg(listing: &str, native: &str) -> Vec<DpkgPackage> {
    let mut out = Vec::new();
    for line in listing.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        let [name, version, arch, section, status] = f[..] else {
            continue;
        };
        if !matches!(status.chars().nth(1), Some(c) if c != 'n' && c != 'c') {
            continue;
        }
        let name = if arch == native || arch == "all" || arch.is_empty() {
            name.to_string()
        } else {
            format!("{name}:{arch}")
        };
        out.push(DpkgPackage {
            name,
            version: version.to_string(),
            arch: arch.to_string(),
            section: section.to_string(),
        });
    }
    out
}

/// The `Section` of each record of `apt-cache show`, by (name as python-apt names it, version).
fn record_sections(records: &str, native: &str) -> IndexMap<(String, String), String> {
    let mut out = IndexMap::new();
    for record in records.split("\n\n") {
        let field = |k: &str| {
            record
                .lines()
                .find_map(|l| l.strip_prefix(k)?.strip_prefix(':'))
                .map(|v| v.trim().to_string())
        };
        let (Some(name), Some(version)) = (field("Package"), field("Version")) else {
            continue;
        };
        let arch = field("Architecture").unwrap_or_default();
        let name = if arch == native || arch == "all" || arch.is_empty() {
            name
        } else {
            format!("{name}:{arch}")
        };
        out.entry((name, version))
            .or_insert_with(|| field("Section").unwrap_or_default());
    }
    out
}

/// `apt-cache policy`'s "Package files": each file line (`500 http://... Packages`) to its
/// release's origin (`o=`), empty when it has none (the dpkg status file).
fn file_origins(policy: &str) -> IndexMap<String, String> {
    let mut out = IndexMap::new();
    let mut current: Option<String> = None;
    for line in policy.lines() {
        let t = line.trim();
        if let Some(rel) = t.strip_prefix("release ") {
            if let Some(file) = current.take() {
                let origin = rel
                    .split(',')
                    .find_map(|kv| kv.strip_prefix("o="))
                    .unwrap_or("")
                    .to_string();
                out.insert(file, origin);
            }
        } else if line.starts_with(' ') && t.split_whitespace().next().is_some_and(is_priority) {
            current = Some(file_key(t));
        }
    }
    out
}

fn is_priority(word: &str) -> bool {
    word.trim_start_matches('-')
        .chars()
        .all(|c| c.is_ascii_digit())
        && !word.is_empty()
}

/// A file line without its priority (`http://deb.debian.org/debian bookworm/main amd64
/// Packages`).
fn file_key(line: &str) -> String {
    line.split_whitespace()
        .skip(1)
        .collect::<Vec<_>>()
        .join(" ")
}

/// For each package of a multi-package `apt-cache policy`, the origin of the first file
/// listed under its installed (`***`) version.
fn installed_origins(policy: &str, files: &IndexMap<String, String>) -> IndexMap<String, String> {
    let mut out = IndexMap::new();
    let mut package: Option<String> = None;
    let mut in_installed = false;
    for line in policy.lines() {
        if !line.starts_with(' ') && line.ends_with(':') {
            package = Some(line.trim_end_matches(':').to_string());
            in_installed = false;
            continue;
        }
        let t = line.trim();
        if let Some(rest) = t.strip_prefix("*** ") {
            in_installed = !rest.is_empty();
            continue;
        }
        let indent = line.len() - line.trim_start().len();
        if in_installed && indent >= 8 {
            if let Some(p) = package.as_ref() {
                if !out.contains_key(p) {
                    let key = file_key(t);
                    out.insert(p.clone(), files.get(&key).cloned().unwrap_or_default());
                }
            }
            continue;
        }
        in_installed = false;
    }
    out
}

/// Installed packages from the rpm database (`epoch` as the bindings' text: `None` when
/// unset).
fn rpm_packages() -> Result<Packages, ModuleError> {
    let listing = run_tool(&[
        "rpm",
        "-qa",
        "--queryformat",
        "%{NAME}\\t%{VERSION}\\t%{RELEASE}\\t%{EPOCH}\\t%{ARCH}\\n",
    ])?;
    Ok(parse_rpm(&listing))
}

fn parse_rpm(listing: &str) -> Packages {
    let mut out: Packages = IndexMap::new();
    for line in listing.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        let [name, version, release, epoch, arch] = f[..] else {
            continue;
        };
        let epoch = if epoch == "(none)" { "None" } else { epoch };
        let arch = if arch == "(none)" { "None" } else { arch };
        let entry = crate::vars::map_value([
            ("name", Value::from(name)),
            ("version", Value::from(version)),
            ("release", Value::from(release)),
            ("epoch", Value::from(epoch)),
            ("arch", Value::from(arch)),
            ("source", Value::from("rpm")),
        ]);
        out.entry(name.to_string()).or_default().push(entry);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dpkg_listing() {
        let l = "bash\t5.2-1\tamd64\tshells\tii \nlibc6\t2.36\ti386\tlibs\tii \n\
                 gone\t1.0\tamd64\tutils\trc \ntzdata\t2024a\tall\tlocaltime\tiU \n";
        let p = parse_dpkg(l, "amd64");
        let names: Vec<&str> = p.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, vec!["bash", "libc6:i386", "tzdata"]);
        assert_eq!(p[0].section, "shells");
    }

    #[test]
    fn apt_policy_origins() {
        let files = file_origins(
            "Package files:\n 100 /var/lib/dpkg/status\n     release a=now\n \
             500 http://deb.debian.org/debian bookworm/main amd64 Packages\n     \
             release v=12.15,o=Debian,a=oldstable,n=bookworm,l=Debian,c=main,b=amd64\n     \
             origin deb.debian.org\nPinned packages:\n",
        );
        assert_eq!(files["/var/lib/dpkg/status"], "");
        assert_eq!(
            files["http://deb.debian.org/debian bookworm/main amd64 Packages"],
            "Debian"
        );
        let policy = "bash:\n  Installed: 5.2.15-2+b8\n  Candidate: 5.2.15-2+b13\n  Version table:\n     5.2.15-2+b13 500\n        500 http://deb.debian.org/debian bookworm/main amd64 Packages\n *** 5.2.15-2+b8 100\n        100 /var/lib/dpkg/status\nfile:\n  Installed: 1:5.44-3\n  Candidate: 1:5.44-3\n  Version table:\n *** 1:5.44-3 500\n        500 http://deb.debian.org/debian bookworm/main amd64 Packages\n        100 /var/lib/dpkg/status\n";
        let o = installed_origins(policy, &files);
        assert_eq!(o["bash"], "");
        assert_eq!(o["file"], "Debian");
        let s = record_sections(
            "Package: libgtk2.0-bin\nVersion: 2.4\nArchitecture: amd64\nSection: oldlibs\n\n\
             Package: libc6\nVersion: 2.36\nArchitecture: i386\nSection: libs\n",
            "amd64",
        );
        assert_eq!(s[&("libgtk2.0-bin".into(), "2.4".into())], "oldlibs");
        assert_eq!(s[&("libc6:i386".into(), "2.36".into())], "libs");
    }

    #[test]
    fn rpm_listing() {
        let p = parse_rpm("bash\t5.1.8\t6.el9\t(none)\tx86_64\nkernel\t5.14\t1\t1\tx86_64\nkernel\t5.15\t1\t1\tx86_64\n");
        assert_eq!(
            p["bash"][0].to_string(),
            "{'name': 'bash', 'version': '5.1.8', 'release': '6.el9', 'epoch': 'None', \
             'arch': 'x86_64', 'source': 'rpm'}"
        );
        assert_eq!(p["kernel"].len(), 2);
    }
}
