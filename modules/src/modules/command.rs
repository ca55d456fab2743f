//! The `command` module (stub: being written).

use crate::args::{ArgSpec, Args};
use crate::resource::{Module, ModuleContext, ModuleError, Resource};

pub struct CommandModule;
pub struct ShellModule;

static SPEC: ArgSpec = ArgSpec {
    module: "command",
    args: &[],
    free_form: false,
    mutually_exclusive: &[],
    required_one_of: &[],
};

impl Module for CommandModule {
    fn spec(&self) -> &'static ArgSpec {
        &SPEC
    }
    fn prepare(&self, _args: &Args, _ctx: &ModuleContext) -> Result<Box<dyn Resource>, ModuleError> {
        Err(ModuleError::new("not implemented"))
    }
}

impl Module for ShellModule {
    fn spec(&self) -> &'static ArgSpec {
        &SPEC
    }
    fn prepare(&self, _args: &Args, _ctx: &ModuleContext) -> Result<Box<dyn Resource>, ModuleError> {
        Err(ModuleError::new("not implemented"))
    }
}
