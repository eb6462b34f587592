//! The engine's one error: a profile or trigger that cannot be compiled.
//!
//! Evaluation itself never fails; everything that could go wrong is caught
//! when configuration is saved, with the JSON path of the offending field.

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ConfigError {
    /// Where in the submitted document, e.g. `rules[2].when.attributes.url.matches`.
    pub path: String,
    pub message: String,
}

impl ConfigError {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self { path: path.into(), message: message.into() }
    }
}
