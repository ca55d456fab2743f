//! The `template` module: a Jinja template from the repository's `templates/` (role, then
//! playbook), rendered with the task's variables and written like `copy` writes a file (same
//! owner/group/mode/backup/force/validate/follow semantics, see `copy.rs`).

use std::path::PathBuf;
use std::sync::Arc;

use crate::args::{ArgDef, ArgSpec, ArgType, Args};
use crate::error::LoadError;
use crate::modules::copy::{file_dest, find_source, source_mode, Common, FileCopy};
use crate::resource::{LoadContext, Module, ModuleContext, ModuleError, Resource, TaskArgs};
use crate::source::SourceKind;

pub struct TemplateModule;

static SPEC: ArgSpec = ArgSpec {
    module: "template",
    args: &[
        ArgDef::new("src", ArgType::Str).required(),
        ArgDef::new("dest", ArgType::Path).required(),
        ArgDef::new("mode", ArgType::Mode),
        ArgDef::new("owner", ArgType::Str),
        ArgDef::new("group", ArgType::Str),
        ArgDef::new("backup", ArgType::Bool),
        ArgDef::new("force", ArgType::Bool),
        ArgDef::new("validate", ArgType::Str),
        ArgDef::new("follow", ArgType::Bool),
    ],
    free_form: false,
    mutually_exclusive: &[],
    required_one_of: &[],
};

impl Module for TemplateModule {
    fn spec(&self) -> &'static ArgSpec {
        &SPEC
    }

    fn validate(&self, args: &TaskArgs, ctx: &LoadContext) -> Result<(), LoadError> {
        crate::modules::copy::validate_src(args, ctx, "templates", true)
    }

    fn prepare(&self, args: &Args, ctx: &ModuleContext) -> Result<Box<dyn Resource>, ModuleError> {
        let common = Common::from_args(args, ctx.host.ids())?;
        let src = args.str("src").unwrap_or_default();
        let dest = args.str("dest").unwrap_or_default();
        let (path, kind) = find_source(ctx, "templates", &src)?;
        if kind == SourceKind::Dir {
            return Err(ModuleError::new(format!(
                "Could not find or access '{src}': it is a directory"
            )));
        }
        let bytes = ctx
            .source
            .read(&path)
            .map_err(|e| ModuleError::new(e.to_string()))?
            .ok_or_else(|| ModuleError::new(format!("could not read {path}")))?;
        let text = String::from_utf8(bytes)
            .map_err(|_| ModuleError::new(format!("template {path} is not valid UTF-8 text")))?;
        let files = crate::template::TemplateFiles::new(ctx.source, ctx.search, &path);
        let rendered = ctx
            .templar
            .render_file(&text, ctx.vars, &files)
            .map_err(|e| ModuleError::new(format!("{path}: {e}")))?;
        let dest_path: PathBuf = file_dest(&dest, path.file_name())?;
        Ok(Box::new(FileCopy {
            dest: dest_path,
            content: Arc::from(rendered.into_bytes()),
            src_mode: source_mode(ctx, &path),
            src: Some(path.to_string()),
            common,
            create_parent: dest.ends_with('/'),
            host: ctx.host.clone(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modules::testing::{v, Harness};
    use crate::resource::Change;

    #[test]
    fn renders_from_templates_dir_idempotently() {
        let h = Harness::new();
        h.repo_file("templates/motd.j2", "hello {{ name }}\n");
        let args = [
            ("src", v("motd.j2")),
            ("dest", v(&h.hs("motd"))),
            ("mode", v("0640")),
        ];
        let ch = h.changes(&TemplateModule, &args);
        assert!(matches!(&ch[..], [Change::WriteFile { .. }]));
        assert!(!h.h("motd").exists());
        let (changed, out) = h.run(&TemplateModule, &args).unwrap();
        assert!(changed);
        assert_eq!(out.data["mode"].as_str(), Some("0640"));
        assert_eq!(
            std::fs::read_to_string(h.h("motd")).unwrap(),
            "hello world\n"
        );
        assert!(h.changes(&TemplateModule, &args).is_empty());
        // A symlink planted at dest is replaced, its target untouched.
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("t"), "keep").unwrap();
        std::fs::remove_file(h.h("motd")).unwrap();
        std::os::unix::fs::symlink(outside.path().join("t"), h.h("motd")).unwrap();
        assert!(h.run(&TemplateModule, &args).unwrap().0);
        assert_eq!(
            std::fs::read_to_string(outside.path().join("t")).unwrap(),
            "keep"
        );
        assert_eq!(
            std::fs::read_to_string(h.h("motd")).unwrap(),
            "hello world\n"
        );
    }

    #[test]
    fn template_errors_fail_the_task() {
        let h = Harness::new();
        h.repo_file("templates/bad.j2", "{{ nope }}\n");
        assert!(h
            .prepare(
                &TemplateModule,
                &[("src", v("bad.j2")), ("dest", v(&h.hs("x")))]
            )
            .is_err());
        assert!(h
            .prepare(
                &TemplateModule,
                &[("src", v("none.j2")), ("dest", v(&h.hs("x")))]
            )
            .is_err());
    }

    fn render(h: &Harness, src: &str) -> Result<String, String> {
        let dest = h.hs("out");
        h.run(&TemplateModule, &[("src", v(src)), ("dest", v(&dest))])
            .map_err(|e| e.to_string())?;
        Ok(std::fs::read_to_string(h.h("out")).unwrap())
    }

    #[test]
    fn includes_imports_and_extends_load_from_the_search_path() {
        let h = Harness::new();
        h.repo_file("templates/main.j2", "A {% include 'part.j2' %}!\n{% from 'macros.j2' import hi %}{{ hi('x') }}\n{% include 'sub/deep.j2' %}\n");
        h.repo_file("templates/part.j2", "part {{ name }}\n");
        h.repo_file(
            "templates/macros.j2",
            "{% macro hi(n) %}hi {{ n }}{% endmacro %}\n",
        );
        h.repo_file("templates/sub/deep.j2", "deep {% include 'part.j2' %}\n");
        assert_eq!(
            render(&h, "main.j2").unwrap(),
            "A part world!\nhi x\ndeep part world\n"
        );
        h.repo_file(
            "templates/child.j2",
            "{% extends 'base.j2' %}{% block b %}child{% endblock %}\n",
        );
        h.repo_file("templates/base.j2", "<{% block b %}base{% endblock %}>\n");
        assert_eq!(render(&h, "child.j2").unwrap(), "<child>\n");
    }

    #[test]
    fn an_include_outside_the_search_path_or_missing_fails_naming_it() {
        let h = Harness::new();
        h.repo_file("templates/up.j2", "{% include '../secret' %}\n");
        h.repo_file("templates/abs.j2", "{% include '/etc/passwd' %}\n");
        h.repo_file("templates/gone.j2", "{% include 'gone.txt' %}\n");
        h.repo_file(
            "templates/opt.j2",
            "[{% include 'gone.txt' ignore missing %}]\n",
        );
        h.repo_file("secret", "s\n");
        let up = render(&h, "up.j2").unwrap_err();
        assert!(up.contains("'../secret'") && up.contains("outside"), "{up}");
        let abs = render(&h, "abs.j2").unwrap_err();
        assert!(
            abs.contains("'/etc/passwd'") && abs.contains("absolute"),
            "{abs}"
        );
        let gone = render(&h, "gone.j2").unwrap_err();
        assert!(
            gone.contains("'gone.txt'") && gone.contains("not found"),
            "{gone}"
        );
        assert_eq!(render(&h, "opt.j2").unwrap(), "[]\n");
    }
}
