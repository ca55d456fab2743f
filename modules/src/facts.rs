//! Host facts, gathered once per converge and cheaply (a few small files under /proc, /etc and
//! /sys, `uname`, one UDP socket to find the default route's source address; no processes).
//!
//! Names and value shapes follow Ansible's `setup` module (ansible-core 2.19), without the
//! `ansible_` prefix in [`Facts::map`]. Missing files (containers) give empty/unknown values,
//! never a panic.

use std::net::Ipv4Addr;

pub(crate) mod extra;
pub mod lazy;
mod mounts;
mod net;
mod virt;

use lazy::LazyFact;

use indexmap::IndexMap;
use minijinja::Value;

/// Facts of this host, keyed by their unprefixed names (`hostname`, `distribution`, ...).
#[derive(Debug, Clone, Default)]
pub struct Facts {
    pub map: IndexMap<String, Value>,
}

fn read(path: &str) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

fn read_trim(path: &str) -> Option<String> {
    read(path)
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// `KEY=value` lines of /etc/os-release (quotes removed).
pub(crate) fn os_release() -> IndexMap<String, String> {
    let text = read("/etc/os-release")
        .or_else(|| read("/usr/lib/os-release"))
        .unwrap_or_default();
    parse_os_release(&text)
}

fn parse_os_release(text: &str) -> IndexMap<String, String> {
    let mut m = IndexMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') {
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            let v = v.trim();
            let v = v
                .strip_prefix('"')
                .and_then(|x| x.strip_suffix('"'))
                .or_else(|| v.strip_prefix('\'').and_then(|x| x.strip_suffix('\'')))
                .unwrap_or(v);
            m.insert(k.trim().to_string(), v.replace("\\\"", "\""));
        }
    }
    m
}

/// Ansible's distribution name for an os-release `ID`.
pub(crate) fn distribution_name(id: &str, name: &str) -> String {
    match id {
        "debian" => "Debian",
        "ubuntu" => "Ubuntu",
        "raspbian" => "Debian",
        "linuxmint" => "Linux Mint",
        "kali" => "Kali",
        "devuan" => "Devuan",
        "pop" => "Pop!_OS",
        "centos" => "CentOS",
        "rhel" => "RedHat",
        "fedora" => "Fedora",
        "rocky" => "Rocky",
        "almalinux" => "AlmaLinux",
        "ol" => "OracleLinux",
        "amzn" => "Amazon",
        "scientific" => "Scientific",
        "cloudlinux" => "CloudLinux",
        "sles" | "sles_sap" => "SLES",
        "opensuse-leap" | "opensuse" => "openSUSE Leap",
        "opensuse-tumbleweed" => "openSUSE Tumbleweed",
        "arch" => "Archlinux",
        "manjaro" => "Manjaro",
        "alpine" => "Alpine",
        "gentoo" => "Gentoo",
        "void" => "Void",
        "nixos" => "NixOS",
        "" => {
            return if name.is_empty() {
                "OtherLinux".into()
            } else {
                name.to_string()
            }
        }
        other => {
            let mut c = other.chars();
            return match c.next() {
                Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
                None => String::new(),
            };
        }
    }
    .to_string()
}

/// Ansible's `os_family` for a distribution (falls back on os-release `ID_LIKE`).
fn os_family(distribution: &str, id_like: &str) -> String {
    let fam = match distribution {
        "Debian" | "Ubuntu" | "Raspbian" | "Linux Mint" | "Kali" | "Devuan" | "Pop!_OS"
        | "Neon" | "Parrot" | "Deepin" => "Debian",
        "RedHat" | "CentOS" | "Fedora" | "Rocky" | "AlmaLinux" | "OracleLinux" | "Amazon"
        | "Scientific" | "CloudLinux" | "XenServer" | "OVS" | "EulerOS" | "openEuler" => "RedHat",
        "SLES" | "SLED" | "openSUSE" | "openSUSE Leap" | "openSUSE Tumbleweed" | "SUSE" => "Suse",
        "Archlinux" | "Manjaro" | "Antergos" => "Archlinux",
        "Alpine" => "Alpine",
        "Gentoo" => "Gentoo",
        "Void" => "Void",
        _ => "",
    };
    if !fam.is_empty() {
        return fam.to_string();
    }
    let like: Vec<&str> = id_like.split_whitespace().collect();
    if like.contains(&"debian") || like.contains(&"ubuntu") {
        "Debian".into()
    } else if like
        .iter()
        .any(|l| matches!(*l, "rhel" | "fedora" | "centos"))
    {
        "RedHat".into()
    } else if like.iter().any(|l| l.contains("suse")) {
        "Suse".into()
    } else if like.contains(&"arch") {
        "Archlinux".into()
    } else {
        distribution.to_string()
    }
}

fn exists(p: &str) -> bool {
    std::path::Path::new(p).exists()
}

fn pkg_mgr(family: &str, distribution: &str, major: &str) -> String {
    let major: u32 = major.parse().unwrap_or(0);
    let found = |bins: &[&str]| {
        bins.iter()
            .any(|b| exists(&format!("/usr/bin/{b}")) || exists(&format!("/bin/{b}")))
    };
    match family {
        "Debian" => return "apt".into(),
        "RedHat" => {
            if distribution == "Fedora" || major >= 8 || distribution == "Amazon" && major >= 2022 {
                return "dnf".into();
            }
            if major > 0 && major < 8 && found(&["yum"]) {
                return "yum".into();
            }
            return "dnf".into();
        }
        "Suse" => return "zypper".into(),
        "Archlinux" => return "pacman".into(),
        "Alpine" => return "apk".into(),
        "Gentoo" => return "portage".into(),
        _ => {}
    }
    for (bin, name) in [
        ("apt-get", "apt"),
        ("dnf", "dnf"),
        ("yum", "yum"),
        ("zypper", "zypper"),
        ("pacman", "pacman"),
        ("apk", "apk"),
        ("emerge", "portage"),
        ("xbps-install", "xbps"),
    ] {
        if found(&[bin]) {
            return name.into();
        }
    }
    "unknown".into()
}

/// Ansible's service manager detection (the cheap part of it).
fn service_mgr() -> String {
    if exists("/run/systemd/system") {
        return "systemd".into();
    }
    let comm = read_trim("/proc/1/comm");
    match comm.as_deref() {
        Some("systemd") => "systemd".into(),
        Some("runit") | Some("runit-init") => "runit".into(),
        Some("openrc-init") => "openrc".into(),
        Some(c) if c != "init" && !c.ends_with("sh") => c.to_string(),
        _ => {
            if exists("/sbin/openrc") {
                "openrc".into()
            } else if exists("/etc/init.d") {
                "sysvinit".into()
            } else {
                "service".into()
            }
        }
    }
}

/// Python's `socket.getfqdn()` for the local host name, from /etc/hosts: the canonical name
/// (or first dotted alias) of the first entry for the address the host name maps to.
pub(crate) fn fqdn(hostname: &str) -> String {
    let hosts = read("/etc/hosts").unwrap_or_default();
    fqdn_from_hosts(hostname, &hosts)
}

fn fqdn_from_hosts(hostname: &str, hosts: &str) -> String {
    let entries: Vec<(String, Vec<String>)> = hosts
        .lines()
        .map(|l| l.split('#').next().unwrap_or(""))
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            let addr = it.next()?.to_string();
            let names: Vec<String> = it.map(str::to_string).collect();
            (!names.is_empty()).then_some((addr, names))
        })
        .collect();
    let Some((addr, _)) = entries
        .iter()
        .find(|(_, n)| n.iter().any(|x| x == hostname))
    else {
        return hostname.to_string();
    };
    let Some((_, names)) = entries.iter().find(|(a, _)| a == addr) else {
        return hostname.to_string();
    };
    names
        .iter()
        .find(|n| n.contains('.'))
        .unwrap_or(&names[0])
        .clone()
}

struct Cpu {
    vcpus: usize,
    count: usize,
    cores: usize,
    threads_per_core: usize,
}

fn cpuinfo() -> Cpu {
    let text = read("/proc/cpuinfo").unwrap_or_default();
    let mut processors = 0;
    let mut physical = std::collections::BTreeSet::new();
    let mut cores = 0;
    let mut siblings = 0;
    for line in text.lines() {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let (k, v) = (k.trim(), v.trim());
        match k {
            "processor" => processors += 1,
            "physical id" => {
                physical.insert(v.to_string());
            }
            "cpu cores" if cores == 0 => cores = v.parse().unwrap_or(0),
            "siblings" if siblings == 0 => siblings = v.parse().unwrap_or(0),
            _ => {}
        }
    }
    if processors == 0 {
        processors = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
    }
    let count = physical.len().max(1);
    let cores = if cores == 0 {
        processors / count
    } else {
        cores
    }
    .max(1);
    let threads_per_core = if siblings > 0 {
        (siblings / cores).max(1)
    } else {
        1
    };
    Cpu {
        vcpus: if physical.is_empty() {
            processors
        } else {
            threads_per_core * cores * count
        },
        count,
        cores,
        threads_per_core,
    }
}

fn meminfo() -> (u64, u64) {
    let text = read("/proc/meminfo").unwrap_or_default();
    let mut total = 0;
    let mut free = 0;
    for line in text.lines() {
        let mut it = line.split_whitespace();
        let (Some(k), Some(v)) = (it.next(), it.next()) else {
            continue;
        };
        let kb: u64 = v.parse().unwrap_or(0);
        match k {
            "MemTotal:" => total = kb / 1024,
            "MemFree:" => free = kb / 1024,
            _ => {}
        }
    }
    (total, free)
}

fn hex_ipv4(h: &str) -> Option<Ipv4Addr> {
    // /proc/net/route prints addresses as host-order (little-endian) hex
    let n = u32::from_str_radix(h, 16).ok()?;
    Some(Ipv4Addr::from(n.to_ne_bytes()))
}

struct Route {
    iface: String,
    dest: Ipv4Addr,
    gateway: Ipv4Addr,
    mask: Ipv4Addr,
    metric: u32,
}

fn routes(text: &str) -> Vec<Route> {
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() < 8 {
                return None;
            }
            let flags = u32::from_str_radix(f[3], 16).ok()?;
            if flags & 1 == 0 {
                return None; // not RTF_UP
            }
            Some(Route {
                iface: f[0].to_string(),
                dest: hex_ipv4(f[1])?,
                gateway: hex_ipv4(f[2])?,
                mask: hex_ipv4(f[7])?,
                metric: f[6].parse().unwrap_or(0),
            })
        })
        .collect()
}

/// Local (non-loopback) IPv4 addresses from /proc/net/fib_trie (`/32 host LOCAL` entries).
fn local_ipv4_addresses(fib_trie: &str) -> Vec<Ipv4Addr> {
    let mut out = Vec::new();
    let mut last: Option<Ipv4Addr> = None;
    for line in fib_trie.lines() {
        let t = line.trim();
        if let Some(rest) = t.strip_prefix("|-- ") {
            last = rest.trim().parse().ok();
        } else if t.starts_with("/32 host LOCAL") {
            if let Some(a) = last {
                if !a.is_loopback() && !out.contains(&a) {
                    out.push(a);
                }
            }
        }
    }
    out
}

/// The source address the kernel picks towards `dest` (no packet is sent).
fn source_address(dest: Ipv4Addr) -> Option<Ipv4Addr> {
    let sock = std::net::UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).ok()?;
    sock.connect((dest, 53)).ok()?;
    match sock.local_addr().ok()? {
        std::net::SocketAddr::V4(a) if !a.ip().is_unspecified() => Some(*a.ip()),
        _ => None,
    }
}

fn default_ipv4(addresses: &[Ipv4Addr]) -> Value {
    let table = routes(&read("/proc/net/route").unwrap_or_default());
    let Some(def) = table
        .iter()
        .filter(|r| r.dest.is_unspecified() && r.mask.is_unspecified())
        .min_by_key(|r| r.metric)
    else {
        return Value::from(IndexMap::<Value, Value>::new());
    };
    let target = if def.gateway.is_unspecified() {
        Ipv4Addr::new(8, 8, 8, 8)
    } else {
        def.gateway
    };
    let address = source_address(target).or_else(|| {
        // an address of the interface's on-link network
        addresses.iter().copied().find(|a| {
            table.iter().any(|r| {
                r.iface == def.iface
                    && !r.mask.is_unspecified()
                    && u32::from(*a) & u32::from(r.mask) == u32::from(r.dest)
            })
        })
    });
    let mut m: IndexMap<Value, Value> = IndexMap::new();
    let mut put = |k: &str, v: Value| {
        m.insert(Value::from(k), v);
    };
    let iface = def.iface.clone();
    if let Some(addr) = address {
        put("address", Value::from(addr.to_string()));
        let mask = table
            .iter()
            .filter(|r| {
                r.iface == iface
                    && r.gateway.is_unspecified()
                    && !r.mask.is_unspecified()
                    && u32::from(addr) & u32::from(r.mask) == u32::from(r.dest)
            })
            .map(|r| r.mask)
            .max_by_key(|m| u32::from(*m).count_ones());
        if let Some(mask) = mask {
            let (a, mk) = (u32::from(addr), u32::from(mask));
            put(
                "broadcast",
                Value::from(Ipv4Addr::from((a & mk) | !mk).to_string()),
            );
            put("netmask", Value::from(mask.to_string()));
            put("network", Value::from(Ipv4Addr::from(a & mk).to_string()));
            put("prefix", Value::from(mk.count_ones().to_string()));
        }
    }
    put("alias", Value::from(iface.as_str()));
    if !def.gateway.is_unspecified() {
        put("gateway", Value::from(def.gateway.to_string()));
    }
    put("interface", Value::from(iface.as_str()));
    let sys = format!("/sys/class/net/{iface}");
    if let Some(mac) = read_trim(&format!("{sys}/address")) {
        put("macaddress", Value::from(mac));
    }
    if let Some(mtu) = read_trim(&format!("{sys}/mtu")).and_then(|s| s.parse::<i64>().ok()) {
        put("mtu", Value::from(mtu));
    }
    let kind = match read_trim(&format!("{sys}/type")).as_deref() {
        Some("1") => {
            if exists(&format!("{sys}/bridge")) {
                "bridge"
            } else {
                "ether"
            }
        }
        Some("772") => "loopback",
        Some(_) => "unknown",
        None => "unknown",
    };
    put("type", Value::from(kind));
    m.sort_keys();
    Value::from(m)
}

impl Facts {
    /// Gathers the facts (a few ms at most: no processes, only small files and syscalls).
    pub fn gather() -> Facts {
        let mut map: IndexMap<String, Value> = IndexMap::new();
        let mut put = |k: &str, v: Value| {
            map.insert(k.to_string(), v);
        };

        let uts = nix::sys::utsname::uname().ok();
        let field = |f: fn(&nix::sys::utsname::UtsName) -> &std::ffi::OsStr| {
            uts.as_ref()
                .map(|u| f(u).to_string_lossy().into_owned())
                .unwrap_or_default()
        };
        let nodename = nix::unistd::gethostname()
            .ok()
            .map(|h| h.to_string_lossy().into_owned())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| field(|u| u.nodename()));
        let hostname = nodename.split('.').next().unwrap_or("").to_string();
        let fqdn = fqdn(&nodename);
        let domain = fqdn
            .split_once('.')
            .map(|(_, d)| d.to_string())
            .unwrap_or_default();
        put("hostname", Value::from(hostname));
        put("nodename", Value::from(nodename.as_str()));
        put("fqdn", Value::from(fqdn.as_str()));
        put("domain", Value::from(domain));

        let osr = os_release();
        let get = |k: &str| osr.get(k).cloned().unwrap_or_default();
        let distribution = distribution_name(&get("ID"), &get("NAME"));
        let mut version = get("VERSION_ID");
        if distribution == "Debian" {
            if let Some(dv) = read_trim("/etc/debian_version") {
                if dv.chars().next().is_some_and(|c| c.is_ascii_digit()) {
                    version = dv;
                }
            }
        }
        let major = version.split('.').next().unwrap_or("").to_string();
        let release = {
            let c = get("VERSION_CODENAME");
            let c = if c.is_empty() {
                get("UBUNTU_CODENAME")
            } else {
                c
            };
            if !c.is_empty() {
                c
            } else {
                // "9.3 (Plow)" -> "Plow"
                let v = get("VERSION");
                match (v.find('('), v.find(')')) {
                    (Some(a), Some(b)) if b > a => v[a + 1..b].trim().to_string(),
                    _ => "NA".into(),
                }
            }
        };
        let family = os_family(&distribution, &get("ID_LIKE"));
        put("distribution", Value::from(distribution.as_str()));
        put(
            "distribution_version",
            Value::from(if version.is_empty() { "NA" } else { &version }),
        );
        put(
            "distribution_major_version",
            Value::from(if major.is_empty() { "NA" } else { &major }),
        );
        put("distribution_release", Value::from(release));
        put("os_family", Value::from(family.as_str()));

        let machine = field(|u| u.machine());
        let architecture = match machine.as_str() {
            "i386" | "i486" | "i586" | "i686" => "i386".to_string(),
            m => m.to_string(),
        };
        put("system", Value::from(field(|u| u.sysname())));
        put("architecture", Value::from(architecture));
        put("machine", Value::from(machine));
        put("kernel", Value::from(field(|u| u.release())));
        put("kernel_version", Value::from(field(|u| u.version())));

        let cpu = cpuinfo();
        put("processor_vcpus", Value::from(cpu.vcpus));
        put("processor_count", Value::from(cpu.count));
        put("processor_cores", Value::from(cpu.cores));
        put(
            "processor_threads_per_core",
            Value::from(cpu.threads_per_core),
        );

        let (total, free) = meminfo();
        put("memtotal_mb", Value::from(total));
        put("memfree_mb", Value::from(free));

        let addresses = local_ipv4_addresses(&read("/proc/net/fib_trie").unwrap_or_default());
        put("default_ipv4", default_ipv4(&addresses));
        put(
            "all_ipv4_addresses",
            Value::from(
                addresses
                    .iter()
                    .map(|a| Value::from(a.to_string()))
                    .collect::<Vec<_>>(),
            ),
        );

        let machine_id = read_trim("/etc/machine-id")
            .or_else(|| read_trim("/var/lib/dbus/machine-id"))
            .unwrap_or_default();
        put("machine_id", Value::from(machine_id));
        put(
            "pkg_mgr",
            Value::from(pkg_mgr(&family, &distribution, &major)),
        );
        put("service_mgr", Value::from(service_mgr()));

        let uid = nix::unistd::getuid();
        let gid = nix::unistd::getgid();
        let user = nix::unistd::User::from_uid(uid).ok().flatten();
        let user_id = std::env::var("LOGNAME")
            .or_else(|_| std::env::var("USER"))
            .ok()
            .filter(|s| !s.is_empty())
            .or_else(|| user.as_ref().map(|u| u.name.clone()))
            .unwrap_or_else(|| uid.to_string());
        put("user_id", Value::from(user_id));
        put("user_uid", Value::from(uid.as_raw()));
        put("user_gid", Value::from(gid.as_raw()));
        if let Some(u) = &user {
            put(
                "user_dir",
                Value::from(u.dir.to_string_lossy().into_owned()),
            );
            put(
                "user_shell",
                Value::from(u.shell.to_string_lossy().into_owned()),
            );
        }
        // Read only when a template asks (a process or a statvfs per mount each).
        // ansible_local: the local facts of Ansible's default fact_path, as its setup reads
        // them for gather_facts ({} without the directory). A file the setup module would
        // fail on (ConfigParser interpolation) leaves the fact undefined: an error when used.
        put(
            "local",
            LazyFact::value(|| {
                crate::modules::setup::local::local_facts(std::path::Path::new(
                    "/etc/ansible/facts.d",
                ))
                .unwrap_or(Value::UNDEFINED)
            }),
        );
        put("python", LazyFact::value(extra::python));
        put("python_version", LazyFact::value(extra::python_version));
        put("date_time", LazyFact::value(extra::date_time));
        put("env", LazyFact::value(extra::env));
        put("dns", LazyFact::value(extra::dns));
        put("memory_mb", LazyFact::value(extra::memory_mb));
        put("selinux", LazyFact::value(extra::selinux));
        put("lsb", LazyFact::value(extra::lsb));
        put("mounts", LazyFact::value(mounts::mounts));
        put(
            "virtualization_type",
            LazyFact::value(|| Value::from(virt::detect().0.as_str())),
        );
        put(
            "virtualization_role",
            LazyFact::value(|| Value::from(virt::detect().1.as_str())),
        );
        let names = net::interface_names();
        for n in &names {
            // An interface named as another fact (none in practice) does not replace it.
            let key = n.replace(['-', ':', '.'], "_");
            if !map.contains_key(&key) {
                let name = n.clone();
                map.insert(key, LazyFact::value(move || net::interface(&name)));
            }
        }
        map.insert(
            "interfaces".into(),
            Value::from(names.into_iter().map(Value::from).collect::<Vec<_>>()),
        );
        Facts { map }
    }

    /// Variables to expose: every fact as `ansible_<name>` plus one `ansible_facts` dict with
    /// the unprefixed names.
    pub fn to_vars(&self) -> IndexMap<String, Value> {
        let mut out = IndexMap::with_capacity(self.map.len() + 1);
        let mut namespaced = IndexMap::with_capacity(self.map.len());
        for (k, v) in &self.map {
            out.insert(format!("ansible_{k}"), v.clone());
            // Ansible's namespace_facts keeps `ansible_local`'s prefix inside `ansible_facts`.
            let inner = if k == "local" { "ansible_local" } else { k };
            namespaced.insert(inner.to_string(), v.clone());
        }
        out.insert(
            "ansible_facts".to_string(),
            Value::from_object(lazy::FactsMap(namespaced)),
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(f: &Facts, k: &str) -> String {
        f.map
            .get(k)
            .unwrap_or_else(|| panic!("missing fact {k}"))
            .as_str()
            .unwrap_or_else(|| panic!("fact {k} is not a string"))
            .to_string()
    }

    #[test]
    fn gather_shapes() {
        let f = Facts::gather();
        let host = nix::unistd::gethostname()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        assert!(!s(&f, "hostname").is_empty());
        assert_eq!(s(&f, "hostname"), host.split('.').next().unwrap());
        assert_eq!(s(&f, "nodename"), host);
        assert!(!s(&f, "fqdn").is_empty());
        assert_eq!(s(&f, "system"), "Linux");
        assert!(!s(&f, "kernel").is_empty());
        assert!(!s(&f, "architecture").is_empty());
        let osr = os_release();
        if let Some(code) = osr.get("VERSION_CODENAME").filter(|c| !c.is_empty()) {
            assert_eq!(&s(&f, "distribution_release"), code);
        }
        if osr.get("ID").map(String::as_str) == Some("debian") {
            assert_eq!(s(&f, "distribution"), "Debian");
            assert_eq!(s(&f, "os_family"), "Debian");
            assert_eq!(s(&f, "pkg_mgr"), "apt");
            let v = s(&f, "distribution_version");
            assert!(v.starts_with(&s(&f, "distribution_major_version")));
        }
        assert!(f.map["processor_vcpus"].as_i64().unwrap() >= 1);
        assert!(f.map["memtotal_mb"].as_i64().unwrap() > 0);
        assert_eq!(
            f.map["user_uid"].as_i64().unwrap(),
            nix::unistd::getuid().as_raw() as i64
        );
        assert_eq!(
            f.map["default_ipv4"].kind(),
            minijinja::value::ValueKind::Map
        );
        assert_eq!(
            f.map["all_ipv4_addresses"].kind(),
            minijinja::value::ValueKind::Seq
        );
        let sm = s(&f, "service_mgr");
        if std::path::Path::new("/run/systemd/system").exists() {
            assert_eq!(sm, "systemd");
        } else if let Some(c) = read_trim("/proc/1/comm") {
            if c != "init" && !c.ends_with("sh") {
                assert_eq!(sm, c);
            }
        }
        if let Some(id) = read_trim("/etc/machine-id") {
            assert_eq!(s(&f, "machine_id"), id);
        }
        // default_ipv4.address, when there is one, is among all_ipv4_addresses
        let d = &f.map["default_ipv4"];
        if let Ok(a) = d.get_attr("address") {
            if !a.is_undefined() {
                let all: Vec<Value> = f.map["all_ipv4_addresses"].try_iter().unwrap().collect();
                assert!(all.contains(&a), "{a:?} not in {all:?}");
                assert!(d.get_attr("interface").unwrap().as_str().is_some());
                assert!(d.get_attr("prefix").unwrap().as_str().is_some());
            }
        }
    }

    #[test]
    fn vars_are_prefixed_and_nested() {
        let f = Facts::gather();
        let v = f.to_vars();
        assert_eq!(v["ansible_hostname"], f.map["hostname"]);
        let af = &v["ansible_facts"];
        assert_eq!(af.get_attr("hostname").unwrap(), f.map["hostname"]);
        assert_eq!(v.len(), f.map.len() + 1);
    }

    #[test]
    fn parsers() {
        let osr = parse_os_release(
            "ID=\"rocky\"\nVERSION=\"9.3 (Blue Onyx)\"\n# c\nID_LIKE='rhel centos fedora'\n",
        );
        assert_eq!(osr["ID"], "rocky");
        assert_eq!(osr["ID_LIKE"], "rhel centos fedora");
        assert_eq!(distribution_name("rocky", ""), "Rocky");
        assert_eq!(os_family("Rocky", ""), "RedHat");
        assert_eq!(os_family("Whatever", "ubuntu debian"), "Debian");
        assert_eq!(os_family("Ubuntu", ""), "Debian");
        assert_eq!(os_family("openSUSE Leap", ""), "Suse");
        let hosts = "127.0.0.1 localhost\n127.0.0.1 vm\n10.0.0.5 web web.example.com # x\n";
        assert_eq!(fqdn_from_hosts("vm", hosts), "localhost");
        assert_eq!(fqdn_from_hosts("web", hosts), "web.example.com");
        assert_eq!(fqdn_from_hosts("other", hosts), "other");
        assert_eq!(hex_ipv4("010200C0"), Some(Ipv4Addr::new(192, 0, 2, 1)));
        let r = routes("Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\n eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\n");
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].gateway, Ipv4Addr::new(192, 0, 2, 1));
        let fib = "Main:\n  +-- 0.0.0.0/0 3 0 5\n     |-- 127.0.0.1\n        /32 host LOCAL\n     |-- 192.0.2.0\n        /24 link UNICAST\n     |-- 192.0.2.2\n        /32 host LOCAL\nLocal:\n     |-- 192.0.2.2\n        /32 host LOCAL\n";
        assert_eq!(local_ipv4_addresses(fib), vec![Ipv4Addr::new(192, 0, 2, 2)]);
    }
}
