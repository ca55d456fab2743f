//! Errors found while loading and validating a playbook: each names file, line and key.

use std::fmt;
use std::sync::Arc;

/// A place in a playbook file: the file's path relative to the playbook directory and a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub file: Arc<str>,
    pub line: u32,
}

impl Location {
    pub fn new(file: Arc<str>, line: u32) -> Location {
        Location { file, line }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

/// Invalid input: nothing of the playbook is applied when one is found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadError {
    pub location: Option<Location>,
    pub key: Option<String>,
    pub message: String,
}

impl LoadError {
    pub fn new(message: impl Into<String>) -> LoadError {
        LoadError {
            location: None,
            key: None,
            message: message.into(),
        }
    }

    pub fn at(location: Location, message: impl Into<String>) -> LoadError {
        LoadError {
            location: Some(location),
            key: None,
            message: message.into(),
        }
    }

    pub fn with_key(mut self, key: impl Into<String>) -> LoadError {
        self.key = Some(key.into());
        self
    }
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(loc) = &self.location {
            write!(f, "{loc}: ")?;
        }
        if let Some(key) = &self.key {
            if !self.message.contains(&format!("`{key}`")) {
                write!(f, "key `{key}`: ")?;
            }
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for LoadError {}

/// Several validation errors at once, so a user fixes them in one round.
#[derive(Debug, Clone, Default)]
pub struct LoadErrors(pub Vec<LoadError>);

impl fmt::Display for LoadErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for LoadErrors {}

impl From<LoadError> for LoadErrors {
    fn from(e: LoadError) -> LoadErrors {
        LoadErrors(vec![e])
    }
}
