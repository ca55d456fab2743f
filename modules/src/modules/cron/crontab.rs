//! ansible-core 2.19's `CronTab` class of `cron.py`, on lines: the `#Ansible: NAME` marker
//! before each managed job, the same search (`find_job` adopts an unmarked identical line),
//! the same rewrites and the same rendering.

use regex::Regex;

use crate::modules::python_re::{self, Flags};
use crate::resource::ModuleError;

/// The marker prefix Ansible writes before a job it manages.
pub(super) const MARKER: &str = "#Ansible: ";

/// Python's `str.splitlines()`: the line boundaries Python knows, without them.
pub(super) fn splitlines(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' => {
                if chars.peek() == Some(&'\n') {
                    chars.next();
                }
                out.push(std::mem::take(&mut cur));
            }
            '\n' | '\x0b' | '\x0c' | '\x1c' | '\x1d' | '\x1e' | '\u{85}' | '\u{2028}'
            | '\u{2029}' => out.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// A crontab being edited.
#[derive(Debug, Clone, Default)]
pub(super) struct CronTab {
    pub lines: Vec<String>,
}

/// A `find_job` result.
pub(super) struct Found {
    pub job_line: String,
    /// The marker was added to an existing unmarked line (`find_job`'s third element).
    pub adopted: bool,
}

impl CronTab {
    fn comment(name: &str) -> String {
        format!("{MARKER}{name}")
    }

    /// `find_job(name, job)`.
    pub fn find_job(&mut self, name: &str, job: Option<&str>) -> Option<Found> {
        let mut comment: Option<String> = None;
        for l in &self.lines {
            if let Some(c) = &comment {
                if c == name {
                    return Some(Found {
                        job_line: l.clone(),
                        adopted: false,
                    });
                }
                comment = None;
            } else if l.starts_with(MARKER) {
                comment = Some(l.replace(MARKER, ""));
            }
        }
        let job = job?;
        let n = self.lines.len();
        for i in 0..n {
            if self.lines[i] != job {
                continue;
            }
            // Python's lines[i - 1]: the last line when i is 0.
            let prev = (i + n - 1) % n;
            if !self.lines[prev].starts_with(MARKER) {
                self.lines.insert(i, Self::comment(name));
                return Some(Found {
                    job_line: job.to_string(),
                    adopted: true,
                });
            }
            if !name.is_empty() && self.lines[prev] == Self::comment("None") {
                self.lines[prev] = Self::comment(name);
                return Some(Found {
                    job_line: job.to_string(),
                    adopted: true,
                });
            }
        }
        None
    }

    pub fn add_job(&mut self, name: &str, job: &str) {
        self.lines.push(Self::comment(name));
        self.lines.push(job.to_string());
    }

    /// `_update_job`: the line after each marker of `name` replaced by `job` (`Some`) or the
    /// marker and that line removed (`None`).
    pub fn update_job(&mut self, name: &str, job: Option<&str>) {
        let marker = Self::comment(name);
        let mut out = Vec::with_capacity(self.lines.len() + 1);
        let mut pending: Option<String> = None;
        for l in std::mem::take(&mut self.lines) {
            if let Some(c) = pending.take() {
                if let Some(job) = job {
                    out.push(c);
                    out.push(job.to_string());
                }
            } else if l == marker {
                pending = Some(l);
            } else {
                out.push(l);
            }
        }
        self.lines = out;
    }

    /// `find_env`'s pattern, `^NAME=` as Python's `re.match` reads it.
    pub fn env_pattern(name: &str) -> Result<Regex, ModuleError> {
        python_re::compile(&format!("^{name}="), Flags::default())
    }

    pub fn find_env(&self, re: &Regex) -> Option<(usize, String)> {
        self.lines
            .iter()
            .enumerate()
            .find(|(_, l)| re.is_match(l))
            .map(|(i, l)| (i, l.clone()))
    }

    /// `add_env`; `Err` with Ansible's message when the anchor variable is missing.
    pub fn add_env(
        &mut self,
        decl: &str,
        insertafter: Option<&str>,
        insertbefore: Option<&str>,
    ) -> Result<(), String> {
        let (other, after) = match (insertafter, insertbefore) {
            (Some(a), _) if !a.is_empty() => (a, true),
            (_, Some(b)) if !b.is_empty() => (b, false),
            _ => {
                self.lines.insert(0, decl.to_string());
                return Ok(());
            }
        };
        let re = Self::env_pattern(other).map_err(|e| e.0)?;
        match self.find_env(&re) {
            Some((i, _)) => {
                self.lines
                    .insert(if after { i + 1 } else { i }, decl.to_string());
                Ok(())
            }
            None => Err(format!("Variable named '{other}' not found.")),
        }
    }

    /// `_update_env`: every `NAME=` line replaced by `decl` (`Some`) or removed.
    pub fn update_env(&mut self, re: &Regex, decl: Option<&str>) {
        let lines = std::mem::take(&mut self.lines);
        self.lines = lines
            .into_iter()
            .filter_map(|l| {
                if re.is_match(&l) {
                    decl.map(str::to_string)
                } else {
                    Some(l)
                }
            })
            .collect();
    }

    pub fn is_empty(&self) -> bool {
        self.lines.iter().all(|l| l.trim().is_empty())
    }

    pub fn job_names(&self) -> Vec<String> {
        self.lines
            .iter()
            .filter(|l| l.starts_with(MARKER))
            .map(|l| l.replace(MARKER, ""))
            .collect()
    }

    /// `get_envnames`: the lines matching `^\S+=`, up to the first `=`.
    pub fn env_names(&self) -> Vec<String> {
        self.lines
            .iter()
            .filter(|l| {
                // `\S+=`: an `=` after at least one character, before any whitespace.
                let word = l.split(char::is_whitespace).next().unwrap_or("");
                word.char_indices().any(|(i, c)| i > 0 && c == '=')
            })
            .map(|l| l.split('=').next().unwrap_or("").to_string())
            .collect()
    }

    /// `render()`.
    pub fn render(&self) -> String {
        let joined = self.lines.join("\n");
        if joined.is_empty() {
            return joined;
        }
        format!("{}\n", joined.trim_end_matches(['\r', '\n']))
    }
}

/// The job line `get_cron_job` makes.
pub(super) struct JobSpec<'a> {
    pub minute: &'a str,
    pub hour: &'a str,
    pub day: &'a str,
    pub month: &'a str,
    pub weekday: &'a str,
    pub special: Option<&'a str>,
    pub disabled: bool,
    /// The user field, for a `cron_file` (system crontab format).
    pub file_user: Option<&'a str>,
}

impl JobSpec<'_> {
    pub fn line(&self, job: &str) -> String {
        let job = job.trim_matches(['\r', '\n']);
        let prefix = if self.disabled { "#" } else { "" };
        let user = self.file_user.map(|u| format!("{u} ")).unwrap_or_default();
        match self.special {
            Some(s) => format!("{prefix}@{s} {user}{job}"),
            None => format!(
                "{prefix}{} {} {} {} {} {user}{job}",
                self.minute, self.hour, self.day, self.month, self.weekday
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tab(text: &str) -> CronTab {
        CronTab {
            lines: splitlines(text),
        }
    }

    #[test]
    fn find_update_and_adopt() {
        let mut t = tab("#Ansible: a\n* * * * * old\n#Ansible: b\n0 1 * * * b\n");
        let f = t.find_job("a", Some("* * * * * new")).unwrap();
        assert_eq!(f.job_line, "* * * * * old");
        t.update_job("a", Some("* * * * * new"));
        assert_eq!(
            t.render(),
            "#Ansible: a\n* * * * * new\n#Ansible: b\n0 1 * * * b\n"
        );
        t.update_job("b", None);
        assert_eq!(t.render(), "#Ansible: a\n* * * * * new\n");
        // An identical unmarked line is adopted.
        let mut t = tab("MAILTO=x\n5 * * * * job\n");
        let f = t.find_job("j", Some("5 * * * * job")).unwrap();
        assert!(f.adopted);
        assert_eq!(t.render(), "MAILTO=x\n#Ansible: j\n5 * * * * job\n");
        assert_eq!(t.job_names(), vec!["j"]);
        assert_eq!(t.env_names(), vec!["MAILTO"]);
    }

    #[test]
    fn env_lines() {
        let mut t = tab("A=1\nB=2\n");
        let re = CronTab::env_pattern("C").unwrap();
        assert!(t.find_env(&re).is_none());
        t.add_env("C=\"3\"", Some("A"), None).unwrap();
        assert_eq!(t.render(), "A=1\nC=\"3\"\nB=2\n");
        assert_eq!(
            t.add_env("D=1", None, Some("Z")).unwrap_err(),
            "Variable named 'Z' not found."
        );
        t.update_env(&CronTab::env_pattern("A").unwrap(), None);
        assert_eq!(t.render(), "C=\"3\"\nB=2\n");
    }
}
