//! A playbook file's entries: plays, and `import_playbook` (static: another playbook of the
//! repository, its plays appended in place, with the import's `when`, `vars` and `tags`).

use std::sync::Arc;

use super::*;
use crate::error::{LoadError, Location};
use crate::yaml::{Node, NodeKind};

/// The keys of an `import_playbook` entry (ansible-core's PlaybookInclude: Base, Conditional,
/// Taggable).
const IMPORT_KEYS: &[&str] = &[
    "import_playbook",
    "ansible.builtin.import_playbook",
    "when",
    "tags",
    "vars",
    "name",
];

impl Loader<'_> {
    /// The plays of a playbook file's root node, imports expanded, into `out`.
    pub(super) fn plays(&mut self, root: &Node, file: &Arc<str>, out: &mut Vec<Play>) {
        match &root.kind {
            NodeKind::Seq(items) => {
                for item in items {
                    let import = item
                        .get("import_playbook")
                        .or_else(|| item.get("ansible.builtin.import_playbook"));
                    match import {
                        Some(target) => self.import_playbook(item, target, file, out),
                        None => {
                            if let Some(play) = self.play(item, file) {
                                out.push(play);
                            }
                        }
                    }
                }
            }
            NodeKind::Null => {}
            _ => self.errors.push(LoadError::at(
                Location::new(file.clone(), root.line),
                "a playbook must be a list of plays",
            )),
        }
    }

    fn import_playbook(
        &mut self,
        item: &Node,
        target: &Node,
        file: &Arc<str>,
        out: &mut Vec<Play>,
    ) {
        let at = Location::new(file.clone(), target.line);
        for e in item.as_map().unwrap_or_default() {
            if !IMPORT_KEYS.contains(&e.key.as_str()) {
                self.errors.push(
                    LoadError::at(
                        Location::new(file.clone(), e.key_line),
                        format!("unsupported `import_playbook` keyword `{}`", e.key),
                    )
                    .with_key(e.key.clone()),
                );
            }
        }
        let Some(name) = target.as_str().filter(|n| !Templar::is_template(n)) else {
            self.errors.push(
                LoadError::at(at, "`import_playbook` needs a static file name")
                    .with_key("import_playbook"),
            );
            return;
        };
        if self.depth > 20 {
            self.errors
                .push(LoadError::at(at, "playbooks imported too deeply (a loop?)"));
            return;
        }
        let dir = RepoPath::new(file).map(|p| p.parent()).unwrap_or_default();
        let path = match dir.join(name) {
            Ok(p) => p,
            Err(e) => {
                self.errors
                    .push(LoadError::at(at, e.to_string()).with_key("import_playbook"));
                return;
            }
        };
        let root = match self.parse_file(&path) {
            Ok(n) => n,
            Err(mut e) => {
                if e.location.is_none() {
                    e.location = Some(at);
                    e.key = Some("import_playbook".into());
                }
                self.errors.push(e);
                return;
            }
        };
        let when = item
            .get("when")
            .map(|n| self.conditions(n, file, "when"))
            .unwrap_or_default();
        let tags = item
            .get("tags")
            .map(|n| self.string_list(n, file, "tags"))
            .unwrap_or_default();
        let vars = item
            .get("vars")
            .map(|n| self.vars_map(n, file))
            .unwrap_or_default();
        // Roles, vars_files and imports of the imported file are found from its directory.
        let saved_base = std::mem::replace(&mut self.base, path.parent());
        let fname: Arc<str> = Arc::from(path.as_str());
        let mut plays = Vec::new();
        self.nested(|this| this.plays(&root, &fname, &mut plays));
        self.base = saved_base;
        for mut play in plays {
            play.when.splice(0..0, when.iter().cloned());
            for t in &tags {
                if !play.tags.contains(t) {
                    play.tags.push(t.clone());
                }
                if !play.common.tags.contains(t) {
                    play.common.tags.push(t.clone());
                }
            }
            // The import's variables over the play's own.
            play.vars
                .extend(vars.iter().map(|(k, v)| (k.clone(), v.clone())));
            out.push(play);
        }
    }
}
