//! The one error type of the host, with the contract's error codes (CONTRACT §9).
//!
//! Every failure anywhere in the host ends as an [`Error`]: a [`Code`] (which
//! fixes the exit status and the `errors[].code` of a failed sync record), a
//! message that names the thing at fault and what to do about it, and optional
//! structured details (file, item index, JSON path, plugin, ...).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::fmt;

/// The contract's error codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Code {
    InvalidArgument,
    DomainNotFound,
    PermissionDenied,
    EntityTypeUnsupported,
    DataFormatInvalid,
    SyncConflict,
    StorageError,
    PluginError,
    LimitExceeded,
    Timeout,
    SyncInProgress,
}

/// The `guard` detail of the mass-delete guard's refusal, by which a caller
/// (the MCP server's confirmation) knows it.
pub const MASS_DELETE_GUARD: &str = "massDelete";

impl Code {
    pub const ALL: [Code; 11] = [
        Code::InvalidArgument,
        Code::DomainNotFound,
        Code::PermissionDenied,
        Code::EntityTypeUnsupported,
        Code::DataFormatInvalid,
        Code::SyncConflict,
        Code::StorageError,
        Code::PluginError,
        Code::LimitExceeded,
        Code::Timeout,
        Code::SyncInProgress,
    ];

    /// The process exit status for this code.
    pub fn exit_code(self) -> i32 {
        match self {
            Code::InvalidArgument => 2,
            Code::DomainNotFound => 3,
            Code::PermissionDenied => 4,
            Code::EntityTypeUnsupported => 5,
            Code::DataFormatInvalid => 6,
            Code::SyncConflict => 7,
            Code::StorageError => 8,
            Code::PluginError => 9,
            Code::LimitExceeded => 10,
            Code::Timeout => 11,
            Code::SyncInProgress => 12,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Code::InvalidArgument => "INVALID_ARGUMENT",
            Code::DomainNotFound => "DOMAIN_NOT_FOUND",
            Code::PermissionDenied => "PERMISSION_DENIED",
            Code::EntityTypeUnsupported => "ENTITY_TYPE_UNSUPPORTED",
            Code::DataFormatInvalid => "DATA_FORMAT_INVALID",
            Code::SyncConflict => "SYNC_CONFLICT",
            Code::StorageError => "STORAGE_ERROR",
            Code::PluginError => "PLUGIN_ERROR",
            Code::LimitExceeded => "LIMIT_EXCEEDED",
            Code::Timeout => "TIMEOUT",
            Code::SyncInProgress => "SYNC_IN_PROGRESS",
        }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failure with its contract code. Boxed, so that every `Result` stays one
/// pointer wide; its fields are read through `Deref`.
#[derive(Debug, Clone, PartialEq)]
pub struct Error(Box<ErrorData>);

/// What an [`Error`] holds.
#[derive(Debug, Clone, PartialEq)]
pub struct ErrorData {
    pub code: Code,
    /// One line saying what went wrong, naming the thing at fault.
    pub message: String,
    /// Further lines for a human reader (e.g. the valid values).
    pub help: Vec<String>,
    /// Structured details for machines: `file`, `index`, `id`, `path`, `plugin`, ...
    pub details: Map<String, Value>,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl std::ops::Deref for Error {
    type Target = ErrorData;
    fn deref(&self) -> &ErrorData {
        &self.0
    }
}

impl From<ErrorData> for Error {
    fn from(d: ErrorData) -> Self {
        Error(Box::new(d))
    }
}

impl Error {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Error(Box::new(ErrorData {
            code,
            message: message.into(),
            help: Vec::new(),
            details: Map::new(),
        }))
    }

    pub fn with_help(mut self, line: impl Into<String>) -> Self {
        self.0.help.push(line.into());
        self
    }

    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.0.details.insert(key.to_string(), value.into());
        self
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Error::new(Code::InvalidArgument, message)
    }

    pub fn storage(what: impl fmt::Display, path: &std::path::Path, e: impl fmt::Display) -> Self {
        Error::new(
            Code::StorageError,
            format!("{what} `{}` failed: {e}", path.display()),
        )
        .with("file", path.display().to_string())
    }

    pub fn plugin(plugin: &str, cause: impl fmt::Display) -> Self {
        Error::new(Code::PluginError, format!("plugin `{plugin}` {cause}")).with("plugin", plugin)
    }

    /// The `{"code": ..., "message": ..., ...details}` object of a sync record.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("code".into(), Value::String(self.code.as_str().into()));
        m.insert("message".into(), Value::String(self.message.clone()));
        if !self.help.is_empty() {
            m.insert("help".into(), self.help.clone().into());
        }
        for (k, v) in &self.details {
            m.insert(k.clone(), v.clone());
        }
        Value::Object(m)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for Error {}

/// The merge core's refusals are `SYNC_CONFLICT`s, with the details a caller
/// needs to find the item or the domain at fault.
impl From<cds_merge::Refusal> for Error {
    fn from(r: cds_merge::Refusal) -> Self {
        let message = r.to_string();
        match r {
            cds_merge::Refusal::DuplicateId {
                domain, id, second, ..
            } => Error::new(Code::SyncConflict, message)
                .with("id", id)
                .with("domain", domain)
                .with("index", second),
            cds_merge::Refusal::MassDeletion {
                domain,
                deletions,
                base_items,
                empty,
                all_deletions,
            } => Error::new(Code::SyncConflict, message)
                .with("guard", MASS_DELETE_GUARD)
                .with("domain", domain)
                .with("deletions", deletions)
                .with("baseItems", base_items)
                .with("empty", empty)
                .with("allDeletions", all_deletions),
        }
    }
}
