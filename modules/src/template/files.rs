//! Templates a template file loads — `{% include %}`, `{% import %}`, `{% from ... import %}`,
//! `{% extends %}` — found on Ansible's template search path, read from the repository through
//! the crate's [`Source`] (so from the Git commit being applied), never from outside it.
//!
//! ansible-core's `template` action searches, for each directory of the task's search path
//! (`ansible_search_path`: the role's directory, then the task file's), then the playbook's
//! directory, then the directory of the template itself: `<dir>/templates/<name>`, then
//! `<dir>/<name>`; the first file found wins. Jinja's loader refuses a name with a `..`
//! part; a name that would leave the repository (or an absolute one) is refused here too.
//!
//! minijinja's loader must be `'static`, and the [`Source`] is borrowed; so a render that
//! needs a file not yet read stops, the file is read, and the render starts again with it
//! (rendering has no side effects; a template needs as many passes as it has levels of
//! includes discovered one after another).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use minijinja::{Environment, Error, ErrorKind};

use crate::source::{RepoPath, Source};

/// The repository and the directories a template's includes are looked for in.
pub struct TemplateFiles<'a> {
    source: &'a dyn Source,
    /// Searched in order, each as `<dir>/templates` then `<dir>`.
    dirs: Vec<RepoPath>,
}

impl<'a> TemplateFiles<'a> {
    /// For the template file `template`, rendered by a task whose relative sources are looked
    /// for in `task_search` (its role's directory, its task file's, the playbook's).
    pub fn new(
        source: &'a dyn Source,
        task_search: &[RepoPath],
        template: &RepoPath,
    ) -> TemplateFiles<'a> {
        let mut dirs: Vec<RepoPath> = task_search.to_vec();
        dirs.push(template.parent());
        TemplateFiles { source, dirs }
    }

    /// The directories searched, in order, for messages.
    fn searched(&self) -> Vec<String> {
        self.dirs
            .iter()
            .flat_map(|d| {
                [
                    d.join("templates")
                        .map(|p| p.to_string())
                        .unwrap_or_default(),
                    d.to_string(),
                ]
            })
            .collect()
    }

    /// A template by the name an include gives: its text, `None` when it is nowhere on the
    /// search path, an error when the name is refused or the file cannot be read.
    fn load(&self, name: &str) -> Result<Option<String>, String> {
        if name.starts_with('/') {
            return Err(format!(
                "template '{name}' is an absolute path: an included template is looked up on the \
                 template search path inside the repository; name it relative to a templates/ \
                 directory"
            ));
        }
        // Jinja's split_template_path: empty and `.` parts are dropped, `..` is refused.
        let parts: Vec<&str> = name
            .split('/')
            .filter(|p| !p.is_empty() && *p != ".")
            .collect();
        if parts.contains(&"..") || parts.is_empty() {
            return Err(format!(
                "template '{name}' is outside the template search path (`..` is not allowed in \
                 an included template's name)"
            ));
        }
        let rel = parts.join("/");
        for dir in &self.dirs {
            for base in [dir.join("templates"), Ok(dir.clone())] {
                let path = base
                    .and_then(|b| b.join(&rel))
                    .map_err(|e| format!("template '{name}' is outside the repository: {e}"))?;
                let bytes = self
                    .source
                    .read(&path)
                    .map_err(|e| format!("template '{name}': {e}"))?;
                if let Some(bytes) = bytes {
                    let text = String::from_utf8(bytes)
                        .map_err(|_| format!("template {path} is not valid UTF-8 text"))?;
                    return Ok(Some(without_final_newline(text)));
                }
            }
        }
        Ok(None)
    }
}

/// Jinja (keep_trailing_newline off, as Ansible's environment) drops one final newline of an
/// included template: `Hello {% include 'world.txt' %}!` is `Hello world!`.
fn without_final_newline(mut text: String) -> String {
    if text.ends_with("\r\n") {
        text.truncate(text.len() - 2);
    } else if text.ends_with('\n') || text.ends_with('\r') {
        text.pop();
    }
    text
}

/// The name the template being rendered is known by (not a name a template can include).
pub(super) const MAIN: &str = "\u{0}template";

/// What the loader knows: each name asked for, loaded or refused.
type Known = HashMap<String, Result<Option<String>, String>>;

/// Files read for one render, and the names the last pass asked for that were not read yet.
#[derive(Default)]
pub(super) struct Loads {
    known: Mutex<Known>,
    wanted: Mutex<Vec<String>>,
}

/// The marker of a pass stopped to read a file.
const NOT_READ_YET: &str = "template file not read yet";

impl Loads {
    /// Installs the loader that serves `main` and the files read so far.
    pub(super) fn install(self: &Arc<Self>, env: &mut Environment<'static>, main: &str) {
        let loads = self.clone();
        let main = main.to_string();
        env.set_loader(move |name| {
            if name == MAIN {
                return Ok(Some(super::fqcn::in_template(&main).into_owned()));
            }
            let known = loads.known.lock().unwrap_or_else(|p| p.into_inner());
            match known.get(name) {
                Some(Ok(text)) => Ok(text
                    .as_ref()
                    .map(|t| super::fqcn::in_template(t).into_owned())),
                Some(Err(msg)) => Err(Error::new(ErrorKind::InvalidOperation, msg.clone())),
                None => {
                    drop(known);
                    loads
                        .wanted
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(name.to_string());
                    Err(Error::new(ErrorKind::InvalidOperation, NOT_READ_YET))
                }
            }
        });
    }

    /// Reads what the last pass asked for; false when it asked for nothing (its result
    /// stands).
    pub(super) fn read_wanted(&self, files: &TemplateFiles) -> bool {
        let wanted: Vec<String> =
            std::mem::take(&mut *self.wanted.lock().unwrap_or_else(|p| p.into_inner()));
        if wanted.is_empty() {
            return false;
        }
        let mut known = self.known.lock().unwrap_or_else(|p| p.into_inner());
        for name in wanted {
            if let std::collections::hash_map::Entry::Vacant(slot) = known.entry(name) {
                let loaded = files.load(slot.key());
                slot.insert(loaded);
            }
        }
        true
    }

    /// How many files were asked for so far (bounds the passes).
    pub(super) fn count(&self) -> usize {
        self.known.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

/// The message for an include whose template is nowhere on the search path.
pub(super) fn not_found(files: &TemplateFiles, name: &str) -> String {
    format!(
        "template '{name}' (included by a template) not found; searched: {}",
        files.searched().join(", ")
    )
}
