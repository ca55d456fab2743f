//! `mounts`: the mounted filesystems with their sizes, as ansible-core's Linux hardware facts
//! list them (devices that are paths or `host:/export`, `none` left out; bind mounts get
//! `bind` in their options).

use indexmap::IndexMap;
use minijinja::Value;

/// One line of /proc/self/mountinfo, the fields Ansible reports.
#[derive(Debug, PartialEq)]
pub(super) struct Mount {
    pub device: String,
    pub mount: String,
    pub fstype: String,
    pub options: String,
}

/// `\040` and the like in mount table fields.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out: Vec<u8> = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 4 <= b.len() {
            if let Some(n) = std::str::from_utf8(&b[i + 1..i + 4])
                .ok()
                .and_then(|o| u8::from_str_radix(o, 8).ok())
            {
                out.push(n);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses /proc/self/mountinfo: `id parent maj:min root mount opts [tags] - fstype source super`.
pub(super) fn parse_mountinfo(text: &str) -> Vec<Mount> {
    let mut out = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        let Some(dash) = f.iter().position(|x| *x == "-") else {
            continue;
        };
        if f.len() < 6 || f.len() < dash + 4 {
            continue;
        }
        let (root, mount, opts) = (f[3], unescape(f[4]), f[5]);
        let (fstype, device, sup) = (f[dash + 1], unescape(f[dash + 2]), f[dash + 3]);
        if (!device.starts_with(['/', '\\']) && !device.contains(":/")) || fstype == "none" {
            continue;
        }
        // /proc/mounts shows the per-mount and the superblock options together.
        let mut options: Vec<&str> = opts.split(',').collect();
        for o in sup.split(',') {
            if !options.contains(&o) {
                options.push(o);
            }
        }
        let mut options = options.join(",");
        if root != "/" {
            options.push_str(",bind");
        }
        out.push(Mount {
            device,
            mount,
            fstype: fstype.to_string(),
            options,
        });
    }
    out
}

fn uuid_of(device: &str) -> String {
    let Ok(entries) = std::fs::read_dir("/dev/disk/by-uuid") else {
        return "N/A".into();
    };
    let want = std::fs::canonicalize(device).ok();
    for e in entries.flatten() {
        if want.is_some() && std::fs::canonicalize(e.path()).ok() == want {
            return e.file_name().to_string_lossy().into_owned();
        }
    }
    "N/A".into()
}

/// `mounts`.
// statvfs field types differ between targets (u32 on some 32-bit ones): the casts stay.
#[allow(clippy::unnecessary_cast)]
pub fn mounts() -> Value {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut out = Vec::new();
    for m in parse_mountinfo(&text) {
        let mut e: IndexMap<Value, Value> = IndexMap::new();
        let mut put = |k: &str, v: Value| {
            e.insert(Value::from(k), v);
        };
        if let Ok(st) = nix::sys::statvfs::statvfs(m.mount.as_str()) {
            let (frsize, bsize) = (st.fragment_size() as u64, st.block_size() as u64);
            let (blocks, bfree, bavail) = (
                st.blocks() as u64,
                st.blocks_free() as u64,
                st.blocks_available() as u64,
            );
            let (files, ffree, favail) = (
                st.files() as u64,
                st.files_free() as u64,
                st.files_available() as u64,
            );
            put("block_available", Value::from(bavail));
            put("block_size", Value::from(bsize));
            put("block_total", Value::from(blocks));
            put("block_used", Value::from(blocks - bfree));
            put("device", Value::from(m.device.as_str()));
            put("dump", Value::from(0));
            put("fstype", Value::from(m.fstype.as_str()));
            put("inode_available", Value::from(favail));
            put("inode_total", Value::from(files));
            put("inode_used", Value::from(files - ffree));
            put("mount", Value::from(m.mount.as_str()));
            put("options", Value::from(m.options.as_str()));
            put("passno", Value::from(0));
            put("size_available", Value::from(frsize * bavail));
            put("size_total", Value::from(frsize * blocks));
        } else {
            put("device", Value::from(m.device.as_str()));
            put("dump", Value::from(0));
            put("fstype", Value::from(m.fstype.as_str()));
            put("mount", Value::from(m.mount.as_str()));
            put("options", Value::from(m.options.as_str()));
            put("passno", Value::from(0));
        }
        put("uuid", Value::from(uuid_of(&m.device)));
        out.push(Value::from(e));
    }
    Value::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo() {
        let text = "22 27 0:21 / /proc rw,relatime - proc proc rw\n\
            27 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw,discard\n\
            30 27 254:0 /srv/x /mnt/with\\040space rw - ext4 /dev/vda rw,discard\n\
            31 27 0:40 / /nfs rw - nfs server:/export rw,vers=4\n\
            32 27 0:41 / /none rw - none /dev/x rw\n";
        let m = parse_mountinfo(text);
        assert_eq!(
            m.iter().map(|m| m.mount.as_str()).collect::<Vec<_>>(),
            ["/", "/mnt/with space", "/nfs"]
        );
        assert_eq!(m[0].options, "rw,relatime,discard");
        assert_eq!(m[1].options, "rw,discard,bind");
        assert_eq!(m[2].device, "server:/export");
    }
}
