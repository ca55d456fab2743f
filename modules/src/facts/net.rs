//! `interfaces` (the names, read at gathering: one directory listing) and `ansible_<iface>`
//! for each (computed on first use): device, active, type, mtu, macaddress, promisc, ipv4
//! (the first address), ipv4_secondaries, ipv6 — as ansible-core's Linux network facts.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::OnceLock;

use indexmap::IndexMap;
use minijinja::Value;

use crate::vars::map_value;

/// The interface names, in directory order (as ansible-core lists /sys/class/net).
pub fn interface_names() -> Vec<String> {
    let Ok(dir) = std::fs::read_dir("/sys/class/net") else {
        return Vec::new();
    };
    dir.flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.is_empty())
        .collect()
}

fn read_trim(p: &str) -> Option<String> {
    std::fs::read_to_string(p)
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// IPv4 addresses by interface (getifaddrs, once per run).
fn ipv4_table() -> &'static Vec<(String, Ipv4Addr, Ipv4Addr)> {
    static CELL: OnceLock<Vec<(String, Ipv4Addr, Ipv4Addr)>> = OnceLock::new();
    CELL.get_or_init(|| {
        let Ok(addrs) = nix::ifaddrs::getifaddrs() else {
            return Vec::new();
        };
        addrs
            .filter_map(|a| {
                let ip = a.address?.as_sockaddr_in()?.ip();
                let mask = a.netmask?.as_sockaddr_in()?.ip();
                Some((a.interface_name, ip, mask))
            })
            .collect()
    })
}

fn ipv4_entry(ip: Ipv4Addr, mask: Ipv4Addr, loopback: bool) -> Value {
    let (a, m) = (u32::from(ip), u32::from(mask));
    let broadcast = if loopback {
        String::new()
    } else {
        Ipv4Addr::from((a & m) | !m).to_string()
    };
    map_value([
        ("address", Value::from(ip.to_string())),
        ("broadcast", Value::from(broadcast)),
        ("netmask", Value::from(mask.to_string())),
        ("network", Value::from(Ipv4Addr::from(a & m).to_string())),
        ("prefix", Value::from(m.count_ones().to_string())),
    ])
}

/// `/proc/net/if_inet6` lines for `iface`: (address, prefix, scope).
pub(super) fn ipv6_of(text: &str, iface: &str) -> Vec<Value> {
    let mut out = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 6 || f[5] != iface || f[0].len() != 32 {
            continue;
        }
        let Ok(n) = u128::from_str_radix(f[0], 16) else {
            continue;
        };
        let prefix = u8::from_str_radix(f[2], 16).unwrap_or(0);
        let scope = match u8::from_str_radix(f[3], 16).unwrap_or(0) {
            0x00 => "global",
            0x10 => "host",
            0x20 => "link",
            0x40 => "site",
            _ => "global",
        };
        out.push(map_value([
            ("address", Value::from(Ipv6Addr::from(n).to_string())),
            ("prefix", Value::from(prefix.to_string())),
            ("scope", Value::from(scope)),
        ]));
    }
    out
}

/// `ansible_<iface>`.
pub fn interface(name: &str) -> Value {
    let sys = format!("/sys/class/net/{name}");
    let mut m: IndexMap<Value, Value> = IndexMap::new();
    let mut put = |k: &str, v: Value| {
        m.insert(Value::from(k), v);
    };
    let kind_code = read_trim(&format!("{sys}/type"));
    let loopback = kind_code.as_deref() == Some("772");
    let active = read_trim(&format!("{sys}/operstate")).is_none_or(|s| s != "down");
    put("active", Value::from(active));
    put("device", Value::from(name));
    let v4: Vec<_> = ipv4_table().iter().filter(|(n, _, _)| n == name).collect();
    if let Some((_, ip, mask)) = v4.first() {
        put("ipv4", ipv4_entry(*ip, *mask, loopback));
    }
    if v4.len() > 1 {
        put(
            "ipv4_secondaries",
            Value::from(
                v4[1..]
                    .iter()
                    .map(|(_, ip, mask)| ipv4_entry(*ip, *mask, loopback))
                    .collect::<Vec<_>>(),
            ),
        );
    }
    let v6 = ipv6_of(
        &std::fs::read_to_string("/proc/net/if_inet6").unwrap_or_default(),
        name,
    );
    if !v6.is_empty() {
        put("ipv6", Value::from(v6));
    }
    if let Some(mac) = read_trim(&format!("{sys}/address")) {
        if !loopback && mac != "00:00:00:00:00:00" {
            put("macaddress", Value::from(mac));
        }
    }
    if let Some(mtu) = read_trim(&format!("{sys}/mtu")).and_then(|s| s.parse::<i64>().ok()) {
        put("mtu", Value::from(mtu));
    }
    let flags = read_trim(&format!("{sys}/flags"))
        .and_then(|f| u32::from_str_radix(f.trim_start_matches("0x"), 16).ok())
        .unwrap_or(0);
    put("promisc", Value::from(flags & 0x100 != 0));
    let kind = match kind_code.as_deref() {
        Some("772") => "loopback",
        Some("1") if std::path::Path::new(&format!("{sys}/bridge")).exists() => "bridge",
        Some("1") => "ether",
        _ => "unknown",
    };
    put("type", Value::from(kind));
    Value::from(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_inet6() {
        let text = "fe8000000000000000fc00fffe000001 04 40 20 80     eth0\n\
                    00000000000000000000000000000001 01 80 10 80       lo\n";
        assert_eq!(
            Value::from(ipv6_of(text, "eth0")).to_string(),
            "[{'address': 'fe80::fc:ff:fe00:1', 'prefix': '64', 'scope': 'link'}]"
        );
        assert_eq!(
            Value::from(ipv6_of(text, "lo")).to_string(),
            "[{'address': '::1', 'prefix': '128', 'scope': 'host'}]"
        );
    }
}
