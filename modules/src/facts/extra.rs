//! Facts roles read beyond the core ones, each computed on first use ([`super::lazy`]):
//! `python`/`python_version` (the host's python3), `date_time`, `env`, `dns`, `memory_mb`,
//! `selinux`, `lsb`. Shapes and texts follow ansible-core 2.19's `setup`.

use std::path::PathBuf;
use std::sync::Mutex;

use indexmap::IndexMap;
use minijinja::Value;

use crate::vars::map_value;

fn s(v: impl Into<String>) -> Value {
    Value::from(v.into())
}

/// The interpreter ansible-core's discovery would pick first on Linux.
const PYTHONS: [&str; 4] = [
    "/usr/bin/python3",
    "/usr/libexec/platform-python",
    "/usr/local/bin/python3",
    "/bin/python3",
];

const PYTHON_PROBE: &str = "import sys, json, ssl\nv = sys.version_info\nprint(json.dumps({'executable': sys.executable, 'has_sslcontext': hasattr(ssl, 'SSLContext'), 'type': sys.implementation.name, 'version': {'major': v.major, 'minor': v.minor, 'micro': v.micro, 'releaselevel': v.releaselevel, 'serial': v.serial}, 'version_info': list(v)}))";

/// The interpreter Ansible's code runs with on this host, when the configuration names one (the
/// bridge's `ansible_python`): `ansible_python` describes it, as Ansible's fact describes the
/// interpreter its modules run with. `None`: the first python3 of the usual places.
static INTERPRETER: Mutex<Option<PathBuf>> = Mutex::new(None);

/// Sets the interpreter `ansible_python` describes (see [`INTERPRETER`]).
pub fn set_python_interpreter(python: Option<PathBuf>) {
    *INTERPRETER.lock().unwrap_or_else(|p| p.into_inner()) = python;
}

/// `python` (undefined when the host has no python3).
pub fn python() -> Value {
    static CACHE: Mutex<Option<(Option<PathBuf>, Value)>> = Mutex::new(None);
    let wanted = INTERPRETER
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let mut cache = CACHE.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((key, v)) = cache.as_ref() {
        if *key == wanted {
            return v.clone();
        }
    }
    let candidates: Vec<PathBuf> = match &wanted {
        Some(p) => vec![p.clone()],
        None => PYTHONS.iter().map(PathBuf::from).collect(),
    };
    let v = probe_pythons(&candidates);
    *cache = Some((wanted, v.clone()));
    v
}

fn probe_pythons(candidates: &[PathBuf]) -> Value {
    for p in candidates {
        if !p.exists() {
            continue;
        }
        let Ok(out) = std::process::Command::new(p)
            .args(["-c", PYTHON_PROBE])
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .output()
        else {
            continue;
        };
        if !out.status.success() {
            continue;
        }
        if let Ok(j) = serde_json::from_slice::<serde_json::Value>(&out.stdout) {
            return Value::from(minijinja::value::Serde(j));
        }
    }
    Value::UNDEFINED
}

/// `python_version`: "3.11.2".
pub fn python_version() -> Value {
    let py = python();
    let Ok(v) = py.get_attr("version") else {
        return Value::UNDEFINED;
    };
    let part = |k: &str| v.get_attr(k).map(|x| x.to_string()).unwrap_or_default();
    if v.is_undefined() {
        return Value::UNDEFINED;
    }
    s(format!(
        "{}.{}.{}",
        part("major"),
        part("minor"),
        part("micro")
    ))
}

/// `env`: the agent's environment.
pub fn env() -> Value {
    let mut vars: Vec<(String, String)> = std::env::vars_os()
        .map(|(k, v)| {
            (
                k.to_string_lossy().into_owned(),
                v.to_string_lossy().into_owned(),
            )
        })
        .collect();
    vars.sort();
    map_value(vars.into_iter().map(|(k, v)| (Value::from(k), s(v))))
}

/// `dns` from /etc/resolv.conf: `nameservers`, `domain`, `search`, `sortlist`, `options`.
pub fn dns() -> Value {
    parse_resolv_conf(&std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default())
}

pub(super) fn parse_resolv_conf(text: &str) -> Value {
    let mut m: IndexMap<Value, Value> = IndexMap::new();
    let list = |m: &mut IndexMap<Value, Value>, key: &str, items: Vec<Value>| {
        let entry = m
            .entry(Value::from(key))
            .or_insert_with(|| Value::from(Vec::<Value>::new()));
        let mut all: Vec<Value> = entry.try_iter().into_iter().flatten().collect();
        all.extend(items);
        *entry = Value::from(all);
    };
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || line.starts_with(';') || line.is_empty() {
            continue;
        }
        let mut f = line.split_whitespace();
        let Some(key) = f.next() else { continue };
        let rest: Vec<&str> = f.collect();
        match key {
            "nameserver" => list(
                &mut m,
                "nameservers",
                rest.iter().take(1).map(|x| s(*x)).collect(),
            ),
            "domain" => {
                if let Some(d) = rest.first() {
                    m.insert(Value::from("domain"), s(*d));
                }
            }
            "search" => {
                m.insert(
                    Value::from("search"),
                    Value::from(rest.iter().map(|x| s(*x)).collect::<Vec<_>>()),
                );
            }
            "sortlist" => {
                m.insert(
                    Value::from("sortlist"),
                    Value::from(rest.iter().map(|x| s(*x)).collect::<Vec<_>>()),
                );
            }
            "options" => {
                let mut opts: IndexMap<Value, Value> = m
                    .get(&Value::from("options"))
                    .and_then(|o| {
                        o.try_iter().ok().map(|it| {
                            it.filter_map(|k| o.get_item(&k).ok().map(|v| (k, v)))
                                .collect()
                        })
                    })
                    .unwrap_or_default();
                for o in rest {
                    let (k, v) = match o.split_once(':') {
                        Some((k, v)) => (k, s(v)),
                        None => (o, Value::from(true)),
                    };
                    opts.insert(Value::from(k), v);
                }
                m.insert(Value::from("options"), Value::from(opts));
            }
            _ => {}
        }
    }
    Value::from(m)
}

/// `memory_mb`: real, nocache and swap figures from /proc/meminfo, in MiB.
pub fn memory_mb() -> Value {
    parse_meminfo(&std::fs::read_to_string("/proc/meminfo").unwrap_or_default())
}

pub(super) fn parse_meminfo(text: &str) -> Value {
    let mut kb: IndexMap<&str, i64> = IndexMap::new();
    for line in text.lines() {
        let mut it = line.split_whitespace();
        if let (Some(k), Some(v)) = (it.next(), it.next()) {
            kb.insert(k.trim_end_matches(':'), v.parse().unwrap_or(0));
        }
    }
    let mb = |k: &str| kb.get(k).copied().unwrap_or(0) / 1024;
    let (total, free) = (mb("MemTotal"), mb("MemFree"));
    let nocache_free = free + mb("Buffers") + mb("Cached");
    let (swap_total, swap_free) = (mb("SwapTotal"), mb("SwapFree"));
    let i = Value::from;
    map_value([
        (
            "nocache",
            map_value([("free", i(nocache_free)), ("used", i(total - nocache_free))]),
        ),
        (
            "real",
            map_value([
                ("free", i(free)),
                ("total", i(total)),
                ("used", i(total - free)),
            ]),
        ),
        (
            "swap",
            map_value([
                ("cached", i(mb("SwapCached"))),
                ("free", i(swap_free)),
                ("total", i(swap_total)),
                ("used", i(swap_total - swap_free)),
            ]),
        ),
    ])
}

/// `selinux`: `{status: disabled}` without /sys/fs/selinux, else its mode and policy.
pub fn selinux() -> Value {
    let base = "/sys/fs/selinux";
    if !std::path::Path::new(base).join("enforce").exists() {
        return map_value([("status", s("disabled"))]);
    }
    let read = |p: &str| {
        std::fs::read_to_string(p)
            .map(|t| t.trim().to_string())
            .unwrap_or_default()
    };
    let mode = match read(&format!("{base}/enforce")).as_str() {
        "1" => "enforcing",
        _ => "permissive",
    };
    let config = std::fs::read_to_string("/etc/selinux/config").unwrap_or_default();
    let conf = |key: &str| {
        config
            .lines()
            .find_map(|l| l.trim().strip_prefix(key)?.strip_prefix('='))
            .map(|v| v.trim().to_string())
            .unwrap_or_else(|| "unknown".into())
    };
    let policyvers = read(&format!("{base}/policyvers"))
        .parse::<i64>()
        .map(Value::from)
        .unwrap_or_else(|_| s("unknown"));
    map_value([
        ("config_mode", s(conf("SELINUX"))),
        ("mode", s(mode)),
        ("policyvers", policyvers),
        ("status", s("enabled")),
        ("type", s(conf("SELINUXTYPE"))),
    ])
}

/// `lsb`: from `lsb_release -a` when installed, else /etc/lsb-release; `{}` without either.
pub fn lsb() -> Value {
    for bin in ["/usr/bin/lsb_release", "/bin/lsb_release"] {
        if !std::path::Path::new(bin).exists() {
            continue;
        }
        if let Ok(out) = std::process::Command::new(bin)
            .arg("-a")
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .output()
        {
            if out.status.success() {
                return parse_lsb_release(&String::from_utf8_lossy(&out.stdout));
            }
        }
    }
    match std::fs::read_to_string("/etc/lsb-release") {
        Ok(text) => parse_lsb_file(&text),
        Err(_) => Value::from(IndexMap::<Value, Value>::new()),
    }
}

fn lsb_value(pairs: Vec<(&str, String)>) -> Value {
    let mut m: IndexMap<Value, Value> = IndexMap::new();
    for (k, v) in pairs {
        if k == "release" {
            m.insert(
                Value::from("major_release"),
                s(v.split('.').next().unwrap_or_default()),
            );
        }
        m.insert(Value::from(k), s(v));
    }
    m.sort_keys();
    Value::from(m)
}

pub(super) fn parse_lsb_release(text: &str) -> Value {
    let mut pairs = Vec::new();
    for line in text.lines() {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let key = match k.trim() {
            "Distributor ID" => "id",
            "Description" => "description",
            "Release" => "release",
            "Codename" => "codename",
            _ => continue,
        };
        pairs.push((key, v.trim().to_string()));
    }
    lsb_value(pairs)
}

fn parse_lsb_file(text: &str) -> Value {
    let mut pairs = Vec::new();
    for line in text.lines() {
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        let key = match k.trim() {
            "DISTRIB_ID" => "id",
            "DISTRIB_RELEASE" => "release",
            "DISTRIB_DESCRIPTION" => "description",
            "DISTRIB_CODENAME" => "codename",
            _ => continue,
        };
        pairs.push((key, v.trim().trim_matches('"').to_string()));
    }
    lsb_value(pairs)
}

/// `date_time`, at the moment it is first read (as Ansible's, at gathering).
pub fn date_time() -> Value {
    let now = jiff::Zoned::now();
    let utc = now.with_time_zone(jiff::tz::TimeZone::UTC);
    let f = |z: &jiff::Zoned, fmt: &str| z.strftime(fmt).to_string();
    let micros = format!("{:06}", now.subsec_nanosecond() / 1000);
    let ts = now.timestamp();
    let epoch = ts.as_second().to_string();
    let weekday_sunday0 = now.weekday().to_sunday_zero_offset();
    let monday0 = (i32::from(weekday_sunday0) + 6) % 7;
    let weeknumber = (i32::from(now.day_of_year()) - 1 + 7 - monday0) / 7;
    let tz_name = now
        .time_zone()
        .to_offset_info(ts)
        .abbreviation()
        .to_string();
    let tz_dst = dst_abbreviation(&now).unwrap_or_else(|| tz_name.clone());
    map_value([
        ("date", s(f(&now, "%Y-%m-%d"))),
        ("day", s(f(&now, "%d"))),
        ("epoch", s(epoch.as_str())),
        ("epoch_int", s(epoch.as_str())),
        ("hour", s(f(&now, "%H"))),
        ("iso8601", s(f(&utc, "%Y-%m-%dT%H:%M:%SZ"))),
        (
            "iso8601_basic",
            s(format!("{}{micros}", f(&now, "%Y%m%dT%H%M%S"))),
        ),
        ("iso8601_basic_short", s(f(&now, "%Y%m%dT%H%M%S"))),
        (
            "iso8601_micro",
            s(format!("{}.{micros}Z", f(&utc, "%Y-%m-%dT%H:%M:%S"))),
        ),
        ("minute", s(f(&now, "%M"))),
        ("month", s(f(&now, "%m"))),
        ("second", s(f(&now, "%S"))),
        ("time", s(f(&now, "%H:%M:%S"))),
        ("tz", s(tz_name)),
        ("tz_dst", s(tz_dst)),
        ("tz_offset", s(f(&now, "%z"))),
        ("weekday", s(f(&now, "%A"))),
        ("weekday_number", s(weekday_sunday0.to_string())),
        ("weeknumber", s(format!("{weeknumber:02}"))),
        ("year", s(f(&now, "%Y"))),
    ])
}

/// Python's `time.tzname[1]`: the zone's daylight-saving abbreviation this year, if it has one.
fn dst_abbreviation(now: &jiff::Zoned) -> Option<String> {
    let tz = now.time_zone();
    for month in [1, 7] {
        let day = jiff::civil::date(now.year(), month, 1).at(12, 0, 0, 0);
        let z = day.to_zoned(tz.clone()).ok()?;
        let info = tz.to_offset_info(z.timestamp());
        if info.dst().is_dst() {
            return Some(info.abbreviation().to_string());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf() {
        let v = parse_resolv_conf(
            "# c\nnameserver 10.0.0.1\nnameserver 10.0.0.2\nsearch a.example b.example\ndomain example\noptions ndots:2 rotate\n",
        );
        assert_eq!(
            v.to_string(),
            "{'nameservers': ['10.0.0.1', '10.0.0.2'], 'search': ['a.example', 'b.example'], \
             'domain': 'example', 'options': {'ndots': '2', 'rotate': True}}"
        );
    }

    #[test]
    fn meminfo() {
        let v = parse_meminfo(
            "MemTotal: 2048000 kB\nMemFree: 1024000 kB\nBuffers: 102400 kB\nCached: 204800 kB\nSwapTotal: 1024000 kB\nSwapFree: 512000 kB\nSwapCached: 10240 kB\n",
        );
        assert_eq!(
            v.to_string(),
            "{'nocache': {'free': 1300, 'used': 700}, 'real': {'free': 1000, 'total': 2000, \
             'used': 1000}, 'swap': {'cached': 10, 'free': 500, 'total': 1000, 'used': 500}}"
        );
    }

    #[test]
    fn lsb_release_output() {
        let v = parse_lsb_release(
            "No LSB modules are available.\nDistributor ID:\tDebian\nDescription:\tDebian GNU/Linux 12 (bookworm)\nRelease:\t12.5\nCodename:\tbookworm\n",
        );
        assert_eq!(
            v.to_string(),
            "{'codename': 'bookworm', 'description': 'Debian GNU/Linux 12 (bookworm)', 'id': \
             'Debian', 'major_release': '12', 'release': '12.5'}"
        );
        assert_eq!(
            parse_lsb_file("DISTRIB_ID=Ubuntu\nDISTRIB_RELEASE=22.04\n").to_string(),
            "{'id': 'Ubuntu', 'major_release': '22', 'release': '22.04'}"
        );
    }

    #[test]
    fn date_time_shape() {
        let v = date_time();
        for k in [
            "date",
            "epoch",
            "iso8601",
            "tz",
            "tz_offset",
            "weeknumber",
            "weekday",
        ] {
            assert!(v.get_attr(k).unwrap().as_str().is_some(), "{k}");
        }
        let iso = v.get_attr("iso8601").unwrap().to_string();
        assert!(iso.ends_with('Z') && iso.len() == 20, "{iso}");
    }
}
