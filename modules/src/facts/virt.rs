//! `virtualization_type` and `virtualization_role`, as ansible-core's Linux virtual facts find
//! them (the common cases): containers first (/proc/1/cgroup, /proc/1/environ, /.dockerenv,
//! /run/.containerenv, /run/systemd/container), then the DMI strings of virtual machines; `NA`
//! when nothing is found.

use std::sync::OnceLock;

fn read(p: &str) -> String {
    std::fs::read_to_string(p)
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

fn exists(p: &str) -> bool {
    std::path::Path::new(p).exists()
}

/// (type, role).
pub fn detect() -> &'static (String, String) {
    static CELL: OnceLock<(String, String)> = OnceLock::new();
    CELL.get_or_init(|| {
        let guest = |t: &str| (t.to_string(), "guest".to_string());
        let cgroup = read("/proc/1/cgroup");
        let docker = regex::Regex::new(r"/docker(/|-[0-9a-f]+\.scope)").ok();
        if docker.is_some_and(|re| re.is_match(&cgroup)) {
            return guest("docker");
        }
        if cgroup.contains("/lxc/") || cgroup.contains("/machine.slice/machine-lxc") {
            return guest("lxc");
        }
        if cgroup.contains("/system.slice/containerd.service") {
            return guest("containerd");
        }
        let environ = std::fs::read("/proc/1/environ").unwrap_or_default();
        for var in environ.split(|b| *b == 0) {
            let var = String::from_utf8_lossy(var);
            if let Some(c) = var.strip_prefix("container=") {
                return match c {
                    "lxc" => guest("lxc"),
                    "podman" => guest("podman"),
                    _ => guest("container"),
                };
            }
        }
        if exists("/.dockerenv") {
            return guest("docker");
        }
        if exists("/run/.containerenv") {
            return guest("podman");
        }
        let systemd_container = read("/run/systemd/container");
        if !systemd_container.is_empty() {
            return guest(&systemd_container);
        }
        if exists("/proc/vz") && !exists("/proc/lve") {
            return if exists("/proc/bc") {
                ("openvz".into(), "host".into())
            } else {
                guest("openvz")
            };
        }
        let dmi = |f: &str| read(&format!("/sys/devices/virtual/dmi/id/{f}"));
        let (product, vendor, bios) = (dmi("product_name"), dmi("sys_vendor"), dmi("bios_vendor"));
        let product_family = dmi("product_family");
        if matches!(product.as_str(), "KVM" | "KVM Server" | "Bochs" | "AHV") {
            return guest("kvm");
        }
        if product == "RHEV Hypervisor" {
            return guest("RHEV");
        }
        if product_family == "RHV" {
            return guest("RHV");
        }
        if product.starts_with("VMware") {
            return guest("VMware");
        }
        if matches!(product.as_str(), "OpenStack Compute" | "OpenStack Nova") {
            return guest("openstack");
        }
        if bios == "Xen" {
            return guest("xen");
        }
        if bios == "innotek GmbH" {
            return guest("virtualbox");
        }
        if bios == "Amazon EC2" || vendor == "Amazon EC2" {
            return guest("kvm");
        }
        match vendor.as_str() {
            "Microsoft Corporation" if product == "Virtual Machine" => return guest("VirtualPC"),
            "Parallels Software International Inc." => return guest("parallels"),
            "QEMU" => return guest("kvm"),
            "oVirt" => return guest("oVirt"),
            "OpenStack Foundation" => return guest("openstack"),
            "Nutanix" if product == "AHV" => return guest("kvm"),
            _ => {}
        }
        if exists("/proc/xen") {
            let caps = read("/proc/xen/capabilities");
            return if caps.contains("control_d") {
                ("xen".into(), "host".into())
            } else {
                guest("xen")
            };
        }
        ("NA".into(), "NA".into())
    })
}
