//! The `blockinfile` module (stub: being written).

use crate::args::{ArgSpec, Args};
use crate::resource::{Module, ModuleContext, ModuleError, Resource};

pub struct BlockinfileModule;

static SPEC: ArgSpec = ArgSpec {
    module: "blockinfile",
    args: &[],
    free_form: false,
    mutually_exclusive: &[],
    required_one_of: &[],
};

impl Module for BlockinfileModule {
    fn spec(&self) -> &'static ArgSpec {
        &SPEC
    }
    fn prepare(&self, _args: &Args, _ctx: &ModuleContext) -> Result<Box<dyn Resource>, ModuleError> {
        Err(ModuleError::new("not implemented"))
    }
}
