//! Control modules that change nothing on the host: `debug`, `set_fact`, `assert`, `fail`.
//! Their whole effect is in the reported outcome (a message, facts to set, a failure).

use indexmap::IndexMap;
use minijinja::Value;

use crate::args::{python_str, ArgDef, ArgSpec, ArgType, Args};
use crate::error::LoadError;
use crate::resource::{
    Check, LoadContext, Module, ModuleContext, ModuleError, Outcome, Resource, TaskArgs,
};

/// A resource whose check already knows the whole outcome.
struct Report(Outcome);

impl Resource for Report {
    fn check(&self) -> Result<Check, ModuleError> {
        Ok(Check::new(Vec::new(), self.0.clone()))
    }
    fn apply(&self, _check: Check) -> Result<Outcome, ModuleError> {
        Ok(self.0.clone())
    }
}

fn report(outcome: Outcome) -> Result<Box<dyn Resource>, ModuleError> {
    Ok(Box::new(Report(outcome)))
}

pub struct DebugModule;

static DEBUG: ArgSpec = ArgSpec {
    module: "debug",
    args: &[
        ArgDef::new("msg", ArgType::Raw),
        ArgDef::new("var", ArgType::Str),
        ArgDef::new("verbosity", ArgType::Int),
    ],
    free_form: false,
    mutually_exclusive: &[&["msg", "var"]],
    required_one_of: &[],
};

impl Module for DebugModule {
    fn spec(&self) -> &'static ArgSpec {
        &DEBUG
    }
    fn prepare(&self, args: &Args, ctx: &ModuleContext) -> Result<Box<dyn Resource>, ModuleError> {
        if let Some(var) = args.str("var") {
            // `var` names an expression, rendered as Ansible does (undefined is reported, not fatal).
            let value = match ctx.templar.eval_expr(&var, ctx.vars) {
                Ok(v) if !v.is_undefined() => v,
                _ => Value::from("VARIABLE IS NOT DEFINED!"),
            };
            return report(Outcome::default().with(&var, value));
        }
        let msg = args
            .get("msg")
            .cloned()
            .unwrap_or_else(|| Value::from("Hello world!"));
        report(Outcome::default().with("msg", msg))
    }
}

pub struct SetFactModule;

static SET_FACT: ArgSpec = ArgSpec {
    module: "set_fact",
    // set_fact takes any key: each becomes a fact. Validation accepts every key (see engine).
    args: &[ArgDef::new("cacheable", ArgType::Bool)],
    free_form: false,
    mutually_exclusive: &[],
    required_one_of: &[],
};

/// `set_fact` arguments are variable names, not a fixed set: they are checked by
/// `check_free_args` and turned into facts by `prepare_free` instead of through the spec. A
/// name may be a template (rendered when the task runs, then checked, as ansible-core does).
impl SetFactModule {
    fn facts(rendered: &IndexMap<String, Value>) -> Outcome {
        let mut facts: IndexMap<String, Value> = IndexMap::new();
        for (k, v) in rendered.iter().filter(|(k, _)| k.as_str() != "cacheable") {
            if !valid_variable_name(k) {
                let msg = format!(
                    "Invalid variable name '{k}'. Variable names must be strings starting with a \
                     letter or underscore character, and contain only letters, numbers and \
                     underscores."
                );
                let mut out = Outcome::default().with("msg", msg.clone());
                out.failed = Some(msg);
                return out;
            }
            facts.insert(k.clone(), v.clone());
        }
        let cacheable = rendered
            .get("cacheable")
            .and_then(crate::args::to_bool)
            .unwrap_or(false);
        Outcome::default()
            .with("ansible_facts", crate::vars::map_value(facts))
            .with("_ansible_facts_cacheable", cacheable)
    }
}

/// Ansible's `validate_variable_name`: an ASCII identifier that is not a Jinja keyword.
fn valid_variable_name(k: &str) -> bool {
    crate::playbook::is_identifier(k)
        && !matches!(
            k,
            "true" | "false" | "none" | "True" | "False" | "None" | "not"
        )
}

impl Module for SetFactModule {
    fn spec(&self) -> &'static ArgSpec {
        &SET_FACT
    }
    fn check_free_args(&self, args: &TaskArgs, ctx: &LoadContext) -> Option<Vec<LoadError>> {
        let mut errors: Vec<LoadError> = Vec::new();
        for (k, v) in args.pairs.iter().filter(|(k, _)| k != "cacheable") {
            if crate::template::Templar::is_template(k) {
                if let Err(e) = ctx.templar.check_syntax(k) {
                    errors.push(
                        LoadError::at(ctx.at(v), format!("template error in `{k}`: {e}"))
                            .with_key(k.clone()),
                    );
                }
            } else if !valid_variable_name(k) {
                errors.push(
                    LoadError::at(ctx.at(v), format!("`{k}` is not a valid variable name"))
                        .with_key(k.clone()),
                );
            }
        }
        if args.pairs.is_empty() {
            errors.push(LoadError::at(
                ctx.task.clone(),
                "`set_fact` needs at least one variable",
            ));
        }
        Some(errors)
    }
    fn prepare_free(&self, rendered: &IndexMap<String, Value>) -> Option<Box<dyn Resource>> {
        Some(Box::new(Report(SetFactModule::facts(rendered))))
    }
    fn prepare(
        &self,
        _args: &Args,
        _ctx: &ModuleContext,
    ) -> Result<Box<dyn Resource>, ModuleError> {
        // Not reached: `prepare_free` builds the resource from the variables.
        Err(ModuleError::new(
            "No key/value pairs provided, at least one is required for this action to succeed",
        ))
    }
}

pub struct AssertModule;

static ASSERT: ArgSpec = ArgSpec {
    module: "assert",
    args: &[
        ArgDef::new("that", ArgType::Raw).required(),
        ArgDef::new("fail_msg", ArgType::Raw).aliases(&["msg"]),
        ArgDef::new("success_msg", ArgType::Raw),
        ArgDef::new("quiet", ArgType::Bool),
    ],
    free_form: false,
    mutually_exclusive: &[],
    required_one_of: &[],
};

impl Module for AssertModule {
    fn spec(&self) -> &'static ArgSpec {
        &ASSERT
    }
    fn prepare(&self, args: &Args, ctx: &ModuleContext) -> Result<Box<dyn Resource>, ModuleError> {
        let that = args.get("that").cloned().unwrap_or_default();
        let conditions: Vec<Value> = match that.as_str() {
            Some(_) => vec![that.clone()],
            None => that
                .try_iter()
                .map(|it| it.collect())
                .map_err(|_| ModuleError::new("`that` must be a string or a list of strings"))?,
        };
        for cond in &conditions {
            let text = python_str(cond);
            let ok = if cond.kind() == minijinja::value::ValueKind::Bool {
                cond.is_true()
            } else {
                ctx.templar
                    .eval_bool(&text, ctx.vars)
                    .map_err(|e| ModuleError::new(format!("assertion `{text}`: {e}")))?
            };
            if !ok {
                let msg = args
                    .get("fail_msg")
                    .map(python_str)
                    .unwrap_or_else(|| "Assertion failed".to_string());
                let mut out = Outcome::default()
                    .with("msg", msg.clone())
                    .with("assertion", text.clone())
                    .with("evaluated_to", false);
                out.failed = Some(msg);
                return report(out);
            }
        }
        let msg = args
            .get("success_msg")
            .map(python_str)
            .unwrap_or_else(|| "All assertions passed".to_string());
        report(Outcome::default().with("msg", msg))
    }
}

pub struct FailModule;

static FAIL: ArgSpec = ArgSpec {
    module: "fail",
    args: &[ArgDef::new("msg", ArgType::Raw)],
    free_form: false,
    mutually_exclusive: &[],
    required_one_of: &[],
};

impl Module for FailModule {
    fn spec(&self) -> &'static ArgSpec {
        &FAIL
    }
    fn prepare(&self, args: &Args, _ctx: &ModuleContext) -> Result<Box<dyn Resource>, ModuleError> {
        let msg = args
            .get("msg")
            .map(python_str)
            .unwrap_or_else(|| "Failed as requested from task".to_string());
        let mut out = Outcome::default().with("msg", msg.clone());
        out.failed = Some(msg);
        report(out)
    }
}
