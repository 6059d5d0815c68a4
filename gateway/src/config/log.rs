//! `[log]`: the diagnostic log (tracing) and the access log (`crate::access_log`).

use std::path::Path;

use actors::spec::FieldError;
use serde::Deserialize;

use super::yes;

/// Log line format of the diagnostic log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// One JSON object per line.
    #[default]
    Json,
    /// Human-readable.
    Pretty,
}

/// Line format of the access log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccessLogFormat {
    /// One JSON object per line.
    #[default]
    Json,
    /// nginx's `combined`, then the request id and the duration in seconds.
    Combined,
}

/// `[log]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// Format.
    #[serde(default)]
    pub format: LogFormat,
    /// Filter (`info`, `gateway=debug,info`); `RUST_LOG` wins when set.
    #[serde(default = "default_level")]
    pub level: String,
    /// One line per proxied request.
    #[serde(default = "yes")]
    pub access_log: bool,
    /// Format of the access log.
    #[serde(default)]
    pub access_log_format: AccessLogFormat,
    /// File the access log is appended to (reopened on SIGUSR1); empty = stdout.
    #[serde(default)]
    pub access_log_file: String,
    /// Log the query string too (off by default: queries can carry secrets).
    #[serde(default)]
    pub access_log_query: bool,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Json,
            level: default_level(),
            access_log: true,
            access_log_format: AccessLogFormat::Json,
            access_log_file: String::new(),
            access_log_query: false,
        }
    }
}

fn default_level() -> String {
    "info".into()
}

impl LogConfig {
    /// The access-log file must be a file path whose directory exists (the file itself is
    /// created at start).
    pub(super) fn validate(&self) -> Result<(), FieldError> {
        const FIELD: &str = "log.access_log_file";
        let file = &self.access_log_file;
        if file.is_empty() {
            return Ok(());
        }
        if file.ends_with('/') || Path::new(file).is_dir() {
            return Err(FieldError::new(FIELD, format!("{file:?} is a directory; give a file path")));
        }
        let dir = Path::new(file).parent().filter(|d| !d.as_os_str().is_empty());
        if let Some(dir) = dir
            && !dir.is_dir()
        {
            return Err(FieldError::new(FIELD, format!("directory {} does not exist", dir.display())));
        }
        Ok(())
    }
}
