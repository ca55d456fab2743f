//! What is mounted, as mount.py sees it: `get_linux_mounts` over `/proc/self/mountinfo`
//! (mount point -> source, where a mount whose parent is known gets its root path as source)
//! and `ismount` (a path on another device than its parent, or its own parent).

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Mount point -> source, as `get_linux_mounts` builds it.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Mounts(HashMap<String, String>);

struct Record {
    id: i64,
    parent: i64,
    root: String,
    dst: String,
    src: String,
}

impl Mounts {
    pub fn read() -> Result<Mounts, String> {
        let text = std::fs::read_to_string("/proc/self/mountinfo")
            .map_err(|e| format!("Cannot open file /proc/self/mountinfo: {e}"))?;
        Ok(Mounts::parse(&text))
    }

    /// The text of a mountinfo file; malformed lines are skipped.
    pub fn parse(text: &str) -> Mounts {
        let mut recs: Vec<Record> = Vec::new();
        for line in text.lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 8 {
                continue;
            }
            let (Ok(id), Ok(parent)) = (f[0].parse(), f[1].parse()) else {
                continue;
            };
            let rec = Record {
                id,
                parent,
                root: f[3].to_string(),
                dst: f[4].to_string(),
                src: f[f.len() - 2].to_string(),
            };
            // A later line with the same id replaces the earlier one (a dict by id).
            match recs.iter().position(|r| r.id == id) {
                Some(i) => recs[i] = rec,
                None => recs.push(rec),
            }
        }
        let mut mounts = HashMap::new();
        // In file order, rewriting roots in place as mount.py does (a parent already visited
        // has its rewritten root).
        for i in 0..recs.len() {
            let parent = recs[i].parent;
            let pi = if parent != 1 {
                recs.iter().position(|r| r.id == parent)
            } else {
                None
            };
            let src = match pi {
                Some(pi) => {
                    let (proot, pdst) = (recs[pi].root.clone(), recs[pi].dst.clone());
                    if proot.len() > 1 && recs[i].root.starts_with(&format!("{proot}/")) {
                        recs[i].root = recs[i].root[proot.len()..].to_string();
                    }
                    if pdst != "/" {
                        recs[i].root = format!("{pdst}{}", recs[i].root);
                    }
                    recs[i].root.clone()
                }
                None => recs[i].src.clone(),
            };
            mounts.insert(recs[i].dst.clone(), src);
        }
        Mounts(mounts)
    }

    /// `is_bind_mounted` on Linux: `dest` is a mount point (of `src`, when given).
    pub fn has(&self, dest: &str, src: Option<&str>) -> bool {
        match (self.0.get(dest), src) {
            (None, _) => false,
            (Some(_), None) => true,
            (Some(s), Some(want)) => s == want,
        }
    }
}

/// mount.py's `ismount`.
pub fn ismount(path: &Path) -> bool {
    let Ok(s1) = std::fs::symlink_metadata(path) else {
        return false;
    };
    if s1.file_type().is_symlink() {
        return false;
    }
    let Ok(parent) = std::fs::canonicalize(path.join("..")) else {
        return false;
    };
    let Ok(s2) = std::fs::symlink_metadata(parent) else {
        return false;
    };
    s1.dev() != s2.dev() || s1.ino() == s2.ino()
}

#[cfg(test)]
mod tests {
    use super::*;

    const INFO: &str = "\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
30 22 0:25 / /mnt/t rw shared:5 - tmpfs tmpfs rw,size=1024k
31 22 8:1 /srv/data /mnt/bind rw shared:1 - ext4 /dev/sda1 rw
";

    #[test]
    fn sources_as_mount_py_computes_them() {
        let m = Mounts::parse(INFO);
        assert!(m.has("/", Some("/dev/sda1")));
        // A mount under a known parent gets its root path as source.
        assert!(m.has("/mnt/t", Some("/")));
        assert!(!m.has("/mnt/t", Some("tmpfs")));
        assert!(m.has("/mnt/bind", Some("/srv/data")));
        assert!(m.has("/mnt/t", None));
        assert!(!m.has("/mnt/x", None));
    }

    #[test]
    fn ismount_of_root_and_a_plain_dir() {
        assert!(ismount(Path::new("/")));
        let d = tempfile::tempdir().unwrap();
        let sub = d.path().join("s");
        std::fs::create_dir(&sub).unwrap();
        assert!(!ismount(&sub));
        assert!(!ismount(&d.path().join("missing")));
    }
}
