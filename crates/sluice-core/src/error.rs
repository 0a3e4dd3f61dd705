//! Error classification shared by every crate.
//!
//! Each crate has its own `thiserror` enum; what reaches a run record, the
//! CLI or (later) the UI is classified here by *domain* and *retryability*, so
//! the CLI knows whether to print a `hint:`, whether a retry may help, and
//! when to say "this is a bug".

/// Who has to act on an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorDomain {
    /// The user's input or configuration is wrong: fix the project or the data.
    User,
    /// An external system failed (disk, network, database, object store).
    External,
    /// Sluice itself is wrong: a bug to report.
    Internal,
}

/// Implemented by error types that reach users.
pub trait Classify {
    /// Who has to act.
    fn domain(&self) -> ErrorDomain;
    /// Whether running the same thing again may succeed.
    fn retryable(&self) -> bool {
        matches!(self.domain(), ErrorDomain::External)
    }
    /// A concrete next step for the user, shown as `hint: …`.
    fn hint(&self) -> Option<String> {
        None
    }
}
