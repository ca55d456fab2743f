//! A module's `validate` command, run on the temporary file before it replaces the real one.

use std::path::Path;

use crate::resource::ModuleError;
use crate::shlex::split as shlex_split;

/// Runs a `validate` command (`%s` is the temporary file), as Ansible's `run_command` does with
/// a string: split like a shell would, no shell.
pub fn run_validate(validate: &str, file: &Path) -> Result<(), ModuleError> {
    if !validate.contains("%s") {
        return Err(ModuleError::new(format!(
            "validate must contain %s: {validate}"
        )));
    }
    let cmd = validate.replace("%s", &file.to_string_lossy());
    let argv = shlex_split(&cmd).map_err(ModuleError::new)?;
    let Some((prog, args)) = argv.split_first() else {
        return Err(ModuleError::new("validate is empty"));
    };
    let out = std::process::Command::new(prog)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| ModuleError::new(format!("failed to validate: {prog}: {e}")))?;
    if !out.status.success() {
        // Ansible's message is exactly "failed to validate" (with exit_status/stdout/stderr as
        // separate fields); ours carries the command's error output for the status report.
        let stderr = String::from_utf8_lossy(&out.stderr);
        let stderr = stderr.trim();
        return Err(ModuleError::new(if stderr.is_empty() {
            "failed to validate".to_string()
        } else {
            format!("failed to validate: {stderr}")
        }));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validate_needs_its_placeholder_and_a_program() {
        let p = Path::new("/nonexistent/f");
        assert_eq!(
            run_validate("true", p).unwrap_err().0,
            "validate must contain %s: true"
        );
        let e = run_validate("'unclosed %s", p).unwrap_err();
        assert_eq!(e.0, "No closing quotation");
        let e = run_validate("/nonexistent/validator %s", p).unwrap_err();
        assert!(
            e.0.starts_with("failed to validate: /nonexistent/validator:"),
            "{e}"
        );
    }
}
