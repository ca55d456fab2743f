//! `do_ini()` of community.general's `ini_file.py`, line by line, on the file's lines: the
//! same fake first and last sections, the same passes over the section (values kept, values
//! rewritten, extra occurrences removed, missing ones inserted after the section's last
//! non-blank non-comment line), the same messages.

use regex::Regex;

/// `ini_file.py`'s fake section name (a commit hash that no real file uses).
const FAKE_SECTION: &str = "ad01e11446efb704fcdbdb21f2c43757423d91c5";

/// The two regular expressions `ini_file.py` matches an option with.
#[derive(Debug, Clone)]
pub(super) struct OptionMatcher {
    /// `match_opt`: the option, active or commented out (`#`/`;`).
    any: Regex,
    /// `match_active_opt`: the option, active only.
    active: Regex,
}

/// One `re.match` result: the groups `ini_file.py` reads.
pub(super) struct OptMatch {
    comment: String,
    sep: String,
    value: String,
}

impl OptionMatcher {
    pub fn new(option: &str) -> OptionMatcher {
        let o = regex::escape(option);
        let build = |comment: &str| {
            Regex::new(&format!(
                r"^(?: |\t)*(?P<comment>{comment})(?: |\t)*{o}(?: |\t)*(?P<sep>=|$)(?: |\t)*(?P<value>.*)"
            ))
            .expect("an escaped option makes a valid pattern")
        };
        OptionMatcher {
            any: build("[#;]?"),
            active: build(""),
        }
    }

    fn run(re: &Regex, line: &str) -> Option<OptMatch> {
        // Python's `$` matches before the line's final newline, `.` stops at it.
        let caps = re.captures(line.strip_suffix('\n').unwrap_or(line))?;
        let g = |n: &str| caps.name(n).map_or("", |m| m.as_str()).to_string();
        Some(OptMatch {
            comment: g("comment"),
            sep: g("sep"),
            value: g("value"),
        })
    }

    pub fn any(&self, line: &str) -> Option<OptMatch> {
        Self::run(&self.any, line)
    }

    pub fn active(&self, line: &str) -> Option<OptMatch> {
        Self::run(&self.active, line)
    }
}

/// A `section_has_values` condition.
#[derive(Debug, Clone)]
pub(super) struct Condition {
    pub option: String,
    pub matcher: OptionMatcher,
    pub values: Vec<String>,
}

/// The edit a task asks for (`do_ini`'s parameters).
#[derive(Debug, Clone)]
pub(super) struct IniEdit {
    pub section: Option<String>,
    pub section_has_values: Option<Vec<Condition>>,
    pub option: Option<String>,
    pub matcher: Option<OptionMatcher>,
    pub values: Vec<String>,
    pub present: bool,
    pub exclusive: bool,
    pub no_extra_spaces: bool,
    pub ignore_spaces: bool,
    pub allow_no_value: bool,
    pub modify_inactive_option: bool,
}

/// What the edit came to: the new lines, `changed` as ini_file.py computes it, and `msg`.
pub(super) struct Edited {
    pub lines: Vec<String>,
    pub changed: bool,
    pub msg: String,
}

/// Python's `readlines()` of a file opened as text (`utf-8-sig`, universal newlines: `\r\n` and
/// `\r` read as `\n`).
pub(super) fn read_lines(text: &str) -> Vec<String> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let text = text.replace("\r\n", "\n").replace('\r', "\n");
    text.split_inclusive('\n').map(str::to_string).collect()
}

fn section_has_values(conds: &Option<Vec<Condition>>, lines: &[String]) -> bool {
    let Some(conds) = conds else { return true };
    conds.iter().all(|c| {
        lines.iter().any(|l| {
            c.matcher
                .any(l)
                .is_some_and(|m| c.values.is_empty() || c.values.contains(&m.value))
        })
    })
}

impl IniEdit {
    fn matches(&self, line: &str) -> Option<OptMatch> {
        let m = self.matcher.as_ref()?;
        if self.modify_inactive_option {
            m.any(line)
        } else {
            m.active(line)
        }
    }

    /// `update_section_line`.
    fn update_line(
        &self,
        section: &mut [String],
        index: usize,
        changed_lines: &mut [bool],
        newline: String,
        changed: &mut bool,
        msg: &mut String,
    ) {
        let mut option_changed = None;
        if self.ignore_spaces {
            if let Some(m) = self.matcher.as_ref() {
                if let Some(old) = m.any(&section[index]) {
                    if old.comment.is_empty() {
                        let new_value = m.any(&newline).map(|n| n.value).unwrap_or_default();
                        option_changed = Some(old.value != new_value);
                    }
                }
            }
        }
        let option_changed = option_changed.unwrap_or(section[index] != newline);
        if option_changed {
            section[index] = newline;
            *changed = true;
            *msg = "option changed".into();
        }
        changed_lines[index] = true;
    }

    /// `do_ini` on the lines of the file (`None`: it does not exist).
    pub fn apply(&self, existing: Option<Vec<String>>) -> Edited {
        let mut values: Vec<String> = Vec::new();
        for v in &self.values {
            if !values.contains(v) {
                values.push(v.clone());
            }
        }
        let option = self.option.as_deref().unwrap_or("");
        let has_option = self.option.as_deref().is_some_and(|o| !o.is_empty());
        let mut lines = existing.unwrap_or_default();
        let mut changed = false;
        if lines.is_empty() {
            lines.push("\n".into());
        }
        if let Some(last) = lines.last_mut() {
            if !last.ends_with('\n') {
                last.push('\n');
                changed = true;
            }
        }
        lines.insert(0, format!("[{FAKE_SECTION}]"));
        lines.push("[".into());
        let section = match self.section.as_deref() {
            Some(s) if !s.is_empty() => s.to_string(),
            _ => FAKE_SECTION.to_string(),
        };
        let mut within_section = false;
        let (mut start, mut end) = (0usize, 0usize);
        let mut msg = String::from("OK");
        let sep = if self.no_extra_spaces { "=" } else { " = " };
        let mut no_value_present = false;
        let section_re = Regex::new(&format!(r"^\[\s*{}\s*\]", regex::escape(section.trim())))
            .expect("an escaped section makes a valid pattern");
        for (index, line) in lines.iter().enumerate() {
            if within_section && line.starts_with('[') {
                if section_has_values(&self.section_has_values, &lines[start..index]) {
                    end = index;
                    break;
                }
                within_section = false;
                start = 0;
                end = 0;
            }
            if section_re.is_match(line) {
                within_section = true;
                start = index;
            }
        }
        let after: Vec<String> = lines[end..].to_vec();
        let mut section_lines: Vec<String> = lines[start..end].to_vec();
        let before: Vec<String> = lines[..start].to_vec();
        let mut changed_lines = vec![false; section_lines.len()];

        if self.present && has_option {
            for index in 0..section_lines.len() {
                let Some(m) = self.matches(&section_lines[index]) else {
                    continue;
                };
                if !values.is_empty() && values.contains(&m.value) {
                    let matched = m.value;
                    let newline = if matched.is_empty() && self.allow_no_value {
                        no_value_present = true;
                        format!("{option}\n")
                    } else {
                        format!("{option}{sep}{matched}\n")
                    };
                    self.update_line(
                        &mut section_lines,
                        index,
                        &mut changed_lines,
                        newline,
                        &mut changed,
                        &mut msg,
                    );
                    if let Some(p) = values.iter().position(|v| *v == matched) {
                        values.remove(p);
                    }
                } else if values.is_empty() && self.allow_no_value {
                    self.update_line(
                        &mut section_lines,
                        index,
                        &mut changed_lines,
                        format!("{option}\n"),
                        &mut changed,
                        &mut msg,
                    );
                    no_value_present = true;
                    break;
                }
            }
        }

        if self.present && self.exclusive && !self.allow_no_value {
            if !values.is_empty() {
                for index in 0..section_lines.len() {
                    if changed_lines[index] {
                        continue;
                    }
                    let Some(m) = self.matches(&section_lines[index]) else {
                        continue;
                    };
                    if !m.comment.is_empty() && m.sep.is_empty() {
                        continue; // a comment that names the option, not a setting
                    }
                    let newline = format!("{option}{sep}{}\n", values.remove(0));
                    self.update_line(
                        &mut section_lines,
                        index,
                        &mut changed_lines,
                        newline,
                        &mut changed,
                        &mut msg,
                    );
                    if values.is_empty() {
                        break;
                    }
                }
            }
            for index in (1..section_lines.len()).rev() {
                if changed_lines[index] {
                    continue;
                }
                let Some(m) = self.matches(&section_lines[index]) else {
                    continue;
                };
                if !m.comment.is_empty() && m.sep.is_empty() {
                    continue;
                }
                section_lines.remove(index);
                changed_lines.remove(index);
                changed = true;
                msg = "option changed".into();
            }
        }

        if self.present {
            for index in (1..=section_lines.len()).rev() {
                if is_blank_or_comment(&section_lines[index - 1]) {
                    continue;
                }
                if has_option && !values.is_empty() {
                    for element in values.iter().rev() {
                        section_lines.insert(index, format!("{option}{sep}{element}\n"));
                        msg = "option added".into();
                        changed = true;
                    }
                } else if has_option
                    && values.is_empty()
                    && self.allow_no_value
                    && !no_value_present
                {
                    section_lines.insert(index, format!("{option}\n"));
                    msg = "option added".into();
                    changed = true;
                }
                break;
            }
        }

        if !self.present {
            if has_option {
                let m = self.matcher.as_ref();
                let kept: Vec<String> = if self.exclusive {
                    section_lines
                        .iter()
                        .filter(|l| m.and_then(|m| m.active(l)).is_none())
                        .cloned()
                        .collect()
                } else if !values.is_empty() {
                    section_lines
                        .iter()
                        .filter(|l| {
                            !m.and_then(|m| m.active(l))
                                .is_some_and(|a| values.contains(&a.value))
                        })
                        .cloned()
                        .collect()
                } else {
                    section_lines.clone()
                };
                if kept != section_lines {
                    changed = true;
                    msg = "option changed".into();
                    section_lines = kept;
                }
            } else if !section_lines.is_empty() {
                section_lines.clear();
                msg = "section removed".into();
                changed = true;
            }
        }

        let mut lines: Vec<String> = before;
        lines.extend(section_lines);
        lines.extend(after);
        lines.remove(0);
        lines.pop();

        if !within_section && self.present {
            lines.push(format!("[{section}]\n"));
            msg = "section and option added".into();
            if let Some(conds) = &self.section_has_values {
                for c in conds {
                    if c.option != option {
                        if !c.values.is_empty() {
                            for v in &c.values {
                                lines.push(format!("{}{sep}{v}\n", c.option));
                            }
                        } else if self.allow_no_value {
                            lines.push(format!("{}\n", c.option));
                        }
                    } else if !self.exclusive {
                        for v in &c.values {
                            if !values.contains(v) {
                                values.push(v.clone());
                            }
                        }
                    }
                }
            }
            if has_option && !values.is_empty() {
                for v in &values {
                    lines.push(format!("{option}{sep}{v}\n"));
                }
            } else if has_option && values.is_empty() && self.allow_no_value {
                lines.push(format!("{option}\n"));
            } else {
                msg = "only section added".into();
            }
            changed = true;
        }
        Edited {
            lines,
            changed,
            msg,
        }
    }
}

/// `^[ \t]*([#;].*)?$` on a line with its newline.
fn is_blank_or_comment(line: &str) -> bool {
    let l = line.strip_suffix('\n').unwrap_or(line);
    let l = l.trim_start_matches([' ', '\t']);
    l.is_empty() || (l.starts_with(['#', ';']) && !l.contains('\n'))
}
