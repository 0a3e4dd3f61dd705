//! Errors of the transform layer; every one names the file (and line when
//! there is one) and says what to do.

use std::path::PathBuf;

/// A result whose error is a [`TransformError`].
pub type Result<T, E = TransformError> = std::result::Result<T, E>;

/// What can go wrong loading a dbt project.
#[derive(Debug, thiserror::Error)]
pub enum TransformError {
    /// A file could not be read.
    #[error("cannot read `{path}`: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A YAML file is not valid, or not the shape dbt expects.
    #[error("{path}{}: {message}", location(*line, *column))]
    Yaml {
        /// The file.
        path: PathBuf,
        /// 1-based line, when known.
        line: Option<usize>,
        /// 1-based column, when known.
        column: Option<usize>,
        /// What is wrong.
        message: String,
        /// What to do.
        hint: Option<String>,
    },
    /// A Jinja template (a model, a macro file) does not parse or render.
    #[error("{path}{}: {message}", location(*line, None))]
    Template {
        /// The file.
        path: PathBuf,
        /// 1-based line, when known.
        line: Option<usize>,
        /// What is wrong (an unknown ref, a missing var, a syntax error).
        message: String,
    },
    /// A seed CSV cannot be loaded: its shape (header, field counts,
    /// encoding), a value under `column_types`, or the config itself.
    #[error("{path}{}: {message}", location(*line, None))]
    Seed {
        /// The CSV file.
        path: PathBuf,
        /// 1-based physical line in the file, when the problem has one.
        line: Option<usize>,
        /// What is wrong, naming the column when there is one.
        message: String,
        /// What to do.
        hint: Option<String>,
    },
    /// The project is not usable as it is (a missing key, a clash).
    #[error("{message}")]
    Project {
        /// What is wrong.
        message: String,
        /// What to do.
        hint: Option<String>,
    },
}

fn location(line: Option<usize>, column: Option<usize>) -> String {
    match (line, column) {
        (Some(l), Some(c)) => format!(":{l}:{c}"),
        (Some(l), None) => format!(":{l}"),
        _ => String::new(),
    }
}

impl TransformError {
    /// What to do about it, when there is something to say.
    pub fn hint(&self) -> Option<&str> {
        match self {
            Self::Yaml { hint, .. } | Self::Seed { hint, .. } | Self::Project { hint, .. } => {
                hint.as_deref()
            }
            Self::Io { .. } | Self::Template { .. } => None,
        }
    }

    /// A YAML error from serde-saphyr, located.
    pub(crate) fn yaml(path: &std::path::Path, e: &serde_saphyr::Error) -> Self {
        let (line, column) = match e.location() {
            Some(l) if l.line() > 0 => (Some(l.line() as usize), Some(l.column() as usize)),
            _ => (None, None),
        };
        let mut message = e.without_snippet().to_string();
        if let Some(rest) = message.strip_prefix("error: ") {
            message = rest.to_string();
        }
        if message.starts_with("line ")
            && let Some(i) = message.find(": ")
        {
            message = message[i + 2..].to_string();
        }
        if let Some(i) = message.rfind(" at line ")
            && message[i..].contains(", column ")
        {
            message.truncate(i);
        }
        Self::Yaml {
            path: path.to_path_buf(),
            line,
            column,
            message,
            hint: None,
        }
    }
}
