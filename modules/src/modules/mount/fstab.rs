//! Editing an fstab exactly as ansible.posix's `mount.py` does on Linux: fields escaped
//! (`\` `\134`, space `\040`, `&` `\046`), lines `src name fstype opts dump passno`, the line
//! of the mount point replaced in place (others, comments and blank lines kept as they are).

/// The fields of the fstab line a task wants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub src: String,
    pub name: String,
    pub fstype: String,
    pub opts: String,
    pub dump: String,
    pub passno: String,
}

/// `_escape_fstab`.
pub fn escape(v: &str) -> String {
    v.replace('\\', "\\134")
        .replace(' ', "\\040")
        .replace('&', "\\046")
}

impl Entry {
    fn escaped(&self) -> Entry {
        Entry {
            src: escape(&self.src),
            name: escape(&self.name),
            fstype: escape(&self.fstype),
            opts: escape(&self.opts),
            dump: escape(&self.dump),
            passno: escape(&self.passno),
        }
    }

    fn line(&self) -> String {
        format!(
            "{} {} {} {} {} {}\n",
            self.src, self.name, self.fstype, self.opts, self.dump, self.passno
        )
    }
}

/// The lines of a text as Python's `readlines()` gives them (ends kept).
fn lines(text: &str) -> impl Iterator<Item = &str> {
    text.split_inclusive('\n')
}

fn is_blank_or_comment(line: &str) -> bool {
    let t = line.trim();
    t.is_empty() || t.starts_with('#')
}

/// Whether a line for `name` (`src`, `fstype`: its fields) is the task's: same mount point,
/// except swap lines (`none`) which are told apart by their source.
fn is_ours(
    line_src: &str,
    line_name: &str,
    line_fstype: &str,
    name: &str,
    src: Option<&str>,
) -> bool {
    if line_name != name {
        return false;
    }
    !matches!(src, Some(s) if line_name == "none" && line_fstype == "swap" && line_src != s)
}

/// The result of `_set_mount_save_old`: the new text and whether it changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetResult {
    pub text: String,
    pub changed: bool,
}

/// Sets the line of `want` in `text` (`_set_mount_save_old` on Linux).
pub fn set(text: &str, want: &Entry) -> SetResult {
    let esc = want.escaped();
    let mut out = String::new();
    let mut exists = false;
    let mut changed = false;
    for raw in lines(text) {
        let line = if raw.ends_with('\n') {
            raw.to_string()
        } else {
            format!("{raw}\n")
        };
        if is_blank_or_comment(&line) {
            out.push_str(&line);
            continue;
        }
        let fields: Vec<&str> = line
            .split('#')
            .next()
            .unwrap_or("")
            .split_whitespace()
            .collect();
        if !(4..=6).contains(&fields.len()) {
            out.push_str(&line);
            continue;
        }
        if !is_ours(fields[0], fields[1], fields[2], &esc.name, Some(&want.src)) {
            out.push_str(&line);
            continue;
        }
        exists = true;
        // A line without dump/passno counts them as the integer 0, which never equals the
        // text "0" in mount.py: such a line is always rewritten with all six fields.
        let differs = fields[0] != esc.src
            || fields[2] != esc.fstype
            || fields[3] != esc.opts
            || fields.get(4) != Some(&esc.dump.as_str())
            || fields.get(5) != Some(&esc.passno.as_str());
        changed |= differs;
        if changed {
            out.push_str(&esc.line());
        } else {
            out.push_str(&line);
        }
    }
    if !exists {
        out.push_str(&esc.line());
        changed = true;
    }
    SetResult { text: out, changed }
}

/// Removes the line of `name` from `text` (`unset_mount` on Linux: only lines of exactly six
/// whitespace-separated words are considered). `None` when nothing changes.
pub fn unset(text: &str, name: &str, src: Option<&str>) -> Option<String> {
    let name = escape(name);
    let mut out = String::new();
    let mut changed = false;
    for line in lines(text) {
        if is_blank_or_comment(line) {
            out.push_str(line);
            continue;
        }
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() != 6 || !is_ours(f[0], f[1], f[2], &name, src) {
            out.push_str(line);
            continue;
        }
        changed = true;
    }
    changed.then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(src: &str, name: &str) -> Entry {
        Entry {
            src: src.into(),
            name: name.into(),
            fstype: "ext4".into(),
            opts: "defaults".into(),
            dump: "0".into(),
            passno: "0".into(),
        }
    }

    #[test]
    fn escapes_as_mount_py() {
        assert_eq!(escape(r"a b&c\d"), r"a\040b\046c\134d");
    }

    #[test]
    fn appends_replaces_and_keeps_the_rest() {
        let r = set(
            "# c\n\n/dev/a / ext4 defaults 0 1",
            &entry("/dev/b", "/srv/my data"),
        );
        assert!(r.changed);
        assert_eq!(
            r.text,
            "# c\n\n/dev/a / ext4 defaults 0 1\n/dev/b /srv/my\\040data ext4 defaults 0 0\n"
        );
        let again = set(&r.text, &entry("/dev/b", "/srv/my data"));
        assert!(!again.changed);
        assert_eq!(again.text, r.text);
        let moved = set(&r.text, &entry("/dev/c", "/srv/my data"));
        assert_eq!(
            moved.text,
            "# c\n\n/dev/a / ext4 defaults 0 1\n/dev/c /srv/my\\040data ext4 defaults 0 0\n"
        );
    }

    #[test]
    fn short_lines_are_always_rewritten() {
        let r = set("/dev/b /srv ext4 defaults\n", &entry("/dev/b", "/srv"));
        assert!(r.changed);
        assert_eq!(r.text, "/dev/b /srv ext4 defaults 0 0\n");
    }

    #[test]
    fn swap_lines_are_told_apart_by_source() {
        let text = "/dev/s1 none swap sw 0 0\n";
        let mut e = entry("/dev/s2", "none");
        e.fstype = "swap".into();
        e.opts = "sw".into();
        let r = set(text, &e);
        assert_eq!(
            r.text,
            "/dev/s1 none swap sw 0 0\n/dev/s2 none swap sw 0 0\n"
        );
        assert_eq!(
            unset(&r.text, "none", Some("/dev/s1")).unwrap(),
            "/dev/s2 none swap sw 0 0\n"
        );
    }

    #[test]
    fn unset_only_considers_six_field_lines() {
        let text = "/dev/a /srv ext4 defaults\n/dev/b /srv ext4 defaults 0 0 # x\n/dev/c /srv ext4 defaults 0 0\n";
        assert_eq!(
            unset(text, "/srv", None).unwrap(),
            "/dev/a /srv ext4 defaults\n/dev/b /srv ext4 defaults 0 0 # x\n"
        );
        assert_eq!(unset("/dev/a /x ext4 defaults 0 0\n", "/srv", None), None);
    }
}
