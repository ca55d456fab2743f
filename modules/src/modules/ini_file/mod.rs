//! The `ini_file` module (community.general, also by its short name): one option of one section
//! of an INI file set, added or removed, with the algorithm of community.general's
//! `ini_file.py` (see [`edit`]).
//!
//! `follow: true` edits the target of a symlink at `path`; without it a symlink is refused
//! (Ansible would replace the link by a regular file holding the target's edited text).

mod edit;

use std::path::PathBuf;

use minijinja::Value;

use self::edit::{Condition, IniEdit, OptionMatcher};
use super::lineinfile::{apply_edit, plan_edit, read_edited, FileAttrs};
use crate::args::{python_str, ArgDef, ArgSpec, ArgType, Args};
use crate::fsops;
use crate::resource::{Check, Module, ModuleContext, ModuleError, Outcome, Owned, Resource};

pub struct IniFileModule;

static SPEC: ArgSpec = ArgSpec {
    module: "ini_file",
    args: &[
        ArgDef::new("path", ArgType::Path)
            .aliases(&["dest"])
            .required(),
        ArgDef::new("section", ArgType::Str),
        ArgDef::new("section_has_values", ArgType::List),
        ArgDef::new("option", ArgType::Str),
        ArgDef::new("value", ArgType::Str),
        ArgDef::new("values", ArgType::List),
        ArgDef::new("backup", ArgType::Bool),
        ArgDef::new("state", ArgType::Str).choices(&["absent", "present"]),
        ArgDef::new("exclusive", ArgType::Bool),
        ArgDef::new("no_extra_spaces", ArgType::Bool),
        ArgDef::new("ignore_spaces", ArgType::Bool),
        ArgDef::new("allow_no_value", ArgType::Bool),
        ArgDef::new("modify_inactive_option", ArgType::Bool),
        ArgDef::new("create", ArgType::Bool),
        ArgDef::new("follow", ArgType::Bool),
        ArgDef::new("owner", ArgType::Str),
        ArgDef::new("group", ArgType::Str),
        ArgDef::new("mode", ArgType::Mode),
    ],
    free_form: false,
    mutually_exclusive: &[&["value", "values"]],
    required_one_of: &[],
};

/// The strings of a list argument, null elements left out (as `ini_file.py` drops `None`).
fn strings(v: &Value) -> Vec<String> {
    v.try_iter()
        .map(|it| {
            it.filter(|x| !x.is_none())
                .map(|x| python_str(&x))
                .collect()
        })
        .unwrap_or_default()
}

/// `section_has_values`: a list of `{option, value | values}`.
fn conditions(v: &Value) -> Result<Vec<Condition>, ModuleError> {
    let bad = |m: &str| ModuleError::new(format!("section_has_values: {m}"));
    let mut out = Vec::new();
    for item in v.try_iter().map_err(|_| bad("must be a list"))? {
        if item.as_object().is_none() || item.as_str().is_some() {
            return Err(bad("each element must be a mapping"));
        }
        let mut option = None;
        let mut value = None;
        let mut values = None;
        for key in item
            .try_iter()
            .map_err(|_| bad("each element must be a mapping"))?
        {
            let k = python_str(&key);
            let val = item.get_item(&key).unwrap_or_default();
            match k.as_str() {
                "option" => option = Some(python_str(&val)),
                "value" if !val.is_none() => value = Some(python_str(&val)),
                "values" if !val.is_none() => values = Some(strings(&val)),
                "value" | "values" => {}
                other => return Err(bad(&format!("unsupported key `{other}`"))),
            }
        }
        let option = option.ok_or_else(|| bad("`option` is required in each element"))?;
        let values = match (value, values) {
            (Some(_), Some(_)) => {
                return Err(bad("parameters are mutually exclusive: value|values"))
            }
            (Some(v), None) => vec![v],
            (None, Some(vs)) => vs,
            (None, None) => Vec::new(),
        };
        out.push(Condition {
            matcher: OptionMatcher::new(&option),
            option,
            values,
        });
    }
    Ok(out)
}

impl Module for IniFileModule {
    fn spec(&self) -> &'static ArgSpec {
        &SPEC
    }

    fn prepare(&self, args: &Args, ctx: &ModuleContext) -> Result<Box<dyn Resource>, ModuleError> {
        let present = args.str("state").as_deref() != Some("absent");
        let allow_no_value = args.bool_or("allow_no_value", false);
        let value = args.str("value");
        let values = args.get("values").map(strings);
        if present
            && !allow_no_value
            && value.is_none()
            && values.as_ref().is_none_or(Vec::is_empty)
        {
            return Err(ModuleError::new(
                "Parameter 'value(s)' must be defined if state=present and allow_no_value=False.",
            ));
        }
        let values = match value {
            Some(v) => vec![v],
            None => values.unwrap_or_default(),
        };
        let option = args.str("option");
        let section_has_values = args.get("section_has_values").map(conditions).transpose()?;
        let edit = IniEdit {
            section: args.str("section"),
            section_has_values,
            matcher: option.as_deref().map(OptionMatcher::new),
            option,
            values,
            present,
            exclusive: args.bool_or("exclusive", true),
            no_extra_spaces: args.bool_or("no_extra_spaces", false),
            ignore_spaces: args.bool_or("ignore_spaces", false),
            allow_no_value,
            modify_inactive_option: args.bool_or("modify_inactive_option", true),
        };
        Ok(Box::new(IniFile {
            path: PathBuf::from(args.str("path").unwrap_or_default()),
            edit,
            create: args.bool_or("create", true),
            follow: args.bool_or("follow", false),
            backup: args.bool_or("backup", false),
            check_mode: ctx.check_mode,
            attrs: FileAttrs::from_args(args, ctx.host.ids())?,
        }))
    }
}

struct IniFile {
    path: PathBuf,
    edit: IniEdit,
    create: bool,
    follow: bool,
    backup: bool,
    /// Ansible sets owner/group/mode only outside check mode: in check mode an attribute-only
    /// difference is not reported.
    check_mode: bool,
    attrs: FileAttrs,
}

impl IniFile {
    /// The file edited: the link's target with `follow` and a symlink at `path`.
    fn target(&self) -> Result<PathBuf, ModuleError> {
        if self.follow && fsops::lstat(&self.path)?.is_some_and(|s| s.kind == fsops::Kind::Symlink)
        {
            return std::fs::canonicalize(&self.path).map_err(|e| {
                ModuleError::new(format!("cannot follow {}: {e}", self.path.display()))
            });
        }
        Ok(self.path.clone())
    }
}

impl Resource for IniFile {
    fn check(&self) -> Result<Check, ModuleError> {
        let target = self.target()?;
        let current = read_edited(&target)?;
        if current.is_none() && !self.create {
            let msg = format!("Destination {} does not exist!", target.display());
            let mut out = Outcome::default().with("rc", 257).with("msg", msg.clone());
            out.failed = Some(msg);
            return Ok(Check::new(Vec::new(), out));
        }
        let lines = current
            .as_ref()
            .map(|(_, bytes)| {
                std::str::from_utf8(bytes)
                    .map(edit::read_lines)
                    .map_err(|e| {
                        ModuleError::new(format!("{} is not valid UTF-8: {e}", target.display()))
                    })
            })
            .transpose()?;
        let edited = self.edit.apply(lines);
        let new = edited.changed.then(|| edited.lines.concat().into_bytes());
        let (mut changes, _) = plan_edit(
            &target,
            current.as_ref(),
            new,
            &self.attrs,
            self.backup,
            None,
        )?;
        if self.check_mode && !edited.changed {
            changes.clear();
        }
        let out = Outcome::default()
            .with("msg", edited.msg)
            .with("path", self.path.display().to_string());
        Ok(Check::new(changes, out))
    }

    fn apply(&self, check: Check) -> Result<Outcome, ModuleError> {
        apply_edit(check, "backup_file")
    }

    fn owns(&self) -> Vec<Owned> {
        vec![Owned::Path(self.path.clone())]
    }
}

#[cfg(test)]
mod tests;
