//! `cross-domain-sync serve`: the skill over MCP (JSON-RPC 2.0, one message per
//! line on stdin/stdout), on the official Rust SDK (rmcp).
//!
//! rmcp does the protocol: the `initialize` handshake of 2025-11-25 (and the
//! older revisions), the handshake-free 2026-07-28 with per-request metadata,
//! tools/list, tools/call, resources, progress and cancellation tokens,
//! elicitation and the tasks extension. Three behaviours the contract asks
//! for differ from rmcp's, so a thin stdio bridge sits between the pipes and
//! rmcp:
//!
//! - a line that is not JSON is answered with `-32700` and `id: null` (rmcp
//!   ignores such lines);
//! - a request the client cancelled (`notifications/cancelled`) gets no
//!   response (rmcp sends whatever the handler returns);
//! - a line longer than [`MAX_LINE`] is answered with `-32600` (with its id
//!   when the line's start tells it, else `id: null`) and skipped, without
//!   ever being held whole (rmcp drops such a line with only a log line, and
//!   the client would wait for ever).
//!
//! Every tool validates its arguments with `jsonschema` before anything runs
//! and answers a bad call with `isError: true`, the contract's error code and
//! each failing JSON path. The sync tool calls the same `Host::sync` as the
//! command line. Its result stays small (counts, capped ids, links to the
//! resources in [`resources`]); a mass deletion or an undo is first put to
//! the user where the client can ask ([`confirm`]); a client that declares
//! the tasks extension gets the sync as a task ([`call`]). Architecture
//! invariant: stdout carries protocol messages only; the bridge's single
//! writer task is the only code that writes it.

mod call;
mod confirm;
mod resources;

use crate::error::{Code, Error};
use crate::install::Host;
use crate::record::Status;
use crate::sync::Cancel;
use call::Call;
use rmcp::handler::server::ServerHandler;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, CancelTaskParams, ContentBlock,
    CreateTaskResult, GetTaskParams, GetTaskResult, Implementation, InitializeResult, JsonObject,
    ListResourceTemplatesResult, ListResourcesResult, ListToolsResult, PaginatedRequestParams,
    ReadResourceRequestParams, ReadResourceResponse, ReadResourceResult, Resource,
    ResourceContents, ServerCapabilities, Tool, ToolAnnotations, UpdateTaskParams,
};
use rmcp::service::{RequestContext, RoleServer};
use rmcp::task_manager::{TaskExit, TaskManager, TaskOptions};
use rmcp::{ErrorData as McpError, ServiceExt};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// The skill's name as the seed gives it: its tool's name with
/// `"mcp": {"toolNames": "seed"}`.
pub const TOOL: &str = "gold.cross-domain-sync";

/// The sync tool's name by default: one every widely used client accepts
/// (`^[a-zA-Z0-9_-]{1,64}$`; Claude Desktop, the Anthropic API, Codex CLI
/// and Copilot CLI refuse dots; CONTRACT §1).
pub const PORTABLE_TOOL: &str = "gold_cross_domain_sync";

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(title = "List conflicts")]
struct ConflictsListArgs {
    /// Include resolved conflicts.
    #[serde(default)]
    all: bool,
    /// Where to go on from: the `nextCursor` of the page before.
    #[serde(default)]
    cursor: Option<String>,
    /// Conflicts per page (default 100).
    #[serde(default)]
    #[schemars(range(min = 1, max = 1000))]
    limit: Option<usize>,
    /// Who asks; values of a domain this user may not read are hidden.
    #[serde(default)]
    user: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(title = "Resolve a conflict")]
struct ResolveArgs {
    /// The conflict's id (`SYNC_ID:N`), from the conflicts tool.
    id: String,
    /// Which value to keep in both domains.
    keep: crate::review::Keep,
    #[serde(default)]
    user: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(title = "Undo a sync")]
struct UndoArgs {
    /// The sync's id, e.g. `sync-20260112-100530`.
    sync_id: String,
    /// Undo even over later changes to the same items.
    #[serde(default)]
    force: bool,
    #[serde(default)]
    user: Option<String>,
}

fn object(v: Value) -> Arc<JsonObject> {
    Arc::new(match v {
        Value::Object(m) => m,
        _ => JsonObject::new(),
    })
}

use crate::validate::schema_of;

/// The MCP server: the host plus the names and schemas of its tools.
#[derive(Clone)]
pub struct Server {
    host: Arc<Host>,
    fallback_user: String,
    names: Names,
    description: String,
    /// Records of this server's syncs that left no file, for their links.
    recent: Arc<resources::Recent>,
    /// Syncs running or finished as tasks (the tasks extension).
    tasks: TaskManager,
}

#[derive(Clone)]
struct Names {
    sync: String,
    conflicts: String,
    resolve: String,
    undo: String,
}

impl Names {
    fn new(names: crate::config::ToolNames) -> Names {
        match names {
            crate::config::ToolNames::Portable => Names {
                sync: PORTABLE_TOOL.to_string(),
                conflicts: format!("{PORTABLE_TOOL}_conflicts"),
                resolve: format!("{PORTABLE_TOOL}_resolve_conflict"),
                undo: format!("{PORTABLE_TOOL}_undo"),
            },
            crate::config::ToolNames::Seed => Names {
                sync: TOOL.to_string(),
                conflicts: format!("{TOOL}.conflicts"),
                resolve: format!("{TOOL}.resolve-conflict"),
                undo: format!("{TOOL}.undo"),
            },
        }
    }
}

/// The `description` of skill.md's frontmatter (compiled in).
fn skill_description() -> String {
    include_str!("../../../skill.md")
        .lines()
        .find_map(|l| l.strip_prefix("description: "))
        .unwrap_or("Synchronise data between the personal and business domains.")
        .to_string()
}

impl Server {
    pub fn new(host: Host, fallback_user: String) -> Server {
        let names = Names::new(host.config.mcp.tool_names());
        Server {
            host: Arc::new(host),
            fallback_user,
            names,
            description: skill_description(),
            recent: Arc::default(),
            tasks: TaskManager::new(),
        }
    }

    pub fn tools(&self) -> Vec<Tool> {
        let ann = |title: &str, read_only: bool, destructive: bool, idempotent: bool| {
            let mut a = ToolAnnotations::new()
                .read_only(read_only)
                .destructive(destructive)
                .idempotent(idempotent)
                .open_world(false);
            a.title = Some(title.to_string());
            a
        };
        vec![
            Tool::new(
                self.names.sync.clone(),
                format!(
                    "{} Returns the sync record; when it reports conflicts, review them with \
                     `{}`.",
                    self.description, self.names.conflicts
                ),
                object(self.host.invocation_schema()),
            )
            .with_title("Cross-Domain Sync")
            .with_raw_output_schema(object(crate::schema::record_schema()))
            // Overwrites and (guarded) deletions; a repeated sync changes
            // nothing; touches only local files.
            .with_annotations(ann("Cross-Domain Sync", false, true, true)),
            Tool::new(
                self.names.conflicts.clone(),
                "List the conflicts syncs resolved automatically: sync, entity type, item id, \
                 field, both domains' values, which won. Values of a domain the user may not \
                 read are hidden. 100 a page by default; pass the page's `nextCursor` as \
                 `cursor` for the next.",
                object(schema_of::<ConflictsListArgs>()),
            )
            .with_title("List sync conflicts")
            .with_annotations(ann("List sync conflicts", true, false, true)),
            Tool::new(
                self.names.resolve.clone(),
                "Resolve one conflict by keeping the source, target or base value in both domains \
                 (audited).",
                object(schema_of::<ResolveArgs>()),
            )
            .with_title("Resolve a sync conflict")
            .with_annotations(ann("Resolve a sync conflict", false, true, false)),
            Tool::new(
                self.names.undo.clone(),
                "Put the items a sync changed back as they were before it, in both domains. \
                 Refuses, naming the items, when a later sync changed the same items, unless \
                 `force` is true (audited).",
                object(schema_of::<UndoArgs>()),
            )
            .with_title("Undo a sync")
            .with_annotations(ann("Undo a sync", false, true, false)),
        ]
    }

    fn user(&self, given: Option<String>) -> String {
        given
            .or_else(|| self.host.config.mcp.default_user.clone())
            .unwrap_or_else(|| self.fallback_user.clone())
    }
}

/// A tool error the model can correct: `isError`, the code and the paths.
fn tool_error(e: &Error) -> CallToolResult {
    let v = json!({"status": "failed", "errors": [e.to_json()]});
    CallToolResult::structured_error(v)
}

/// Validates `args` against `schema`; a failure is an `INVALID_ARGUMENT`
/// naming every failing path.
fn validated<T: serde::de::DeserializeOwned>(schema: &Value, args: &Value) -> Result<T, Error> {
    let v = crate::validate::violations(schema, args);
    if let Some(first) = v.first() {
        let paths: Vec<String> = v.iter().map(|x| x.path.clone()).collect();
        let mut err = Error::invalid(format!(
            "the arguments are not valid: at {}: {}",
            first.path, first.message
        ))
        .with("paths", paths);
        for more in v.iter().skip(1) {
            err = err.with_help(format!("also at {}: {}", more.path, more.message));
        }
        return Err(err);
    }
    serde_json::from_value(args.clone())
        .map_err(|e| Error::invalid(format!("the arguments are not valid: {e}")))
}

impl ServerHandler for Server {
    fn get_info(&self) -> InitializeResult {
        InitializeResult::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_resources()
                .enable_tasks()
                .build(),
        )
        .with_server_info(Implementation::new(
            "cross-domain-sync",
            env!("CARGO_PKG_VERSION"),
        ))
        .with_instructions(format!(
            "Tool `{}` synchronises the personal and business domains; see its description. \
                 Follow-up tools review conflicts and undo syncs. Resources \
                 (`{}sync/{{syncId}}`, `conflicts/{{domain}}`, `audit/tail`, `audit/verify`) \
                 hold the sync records, open conflicts and audit trail.",
            self.names.sync,
            resources::SCHEME
        ))
    }

    async fn list_resources(
        &self,
        request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, McpError> {
        let cursor = request.and_then(|r| r.cursor);
        let host = self.host.clone();
        let (resources, next) =
            tokio::task::spawn_blocking(move || resources::list(&host, cursor.as_deref()))
                .await
                .map_err(|e| McpError::internal_error(e.to_string(), None))?
                .map_err(|e| resource_error(&e))?;
        let mut out = ListResourcesResult::with_all_items(resources);
        out.next_cursor = next;
        Ok(out)
    }

    async fn get_task(
        &self,
        request: GetTaskParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<GetTaskResult, McpError> {
        Ok(GetTaskResult::new(self.tasks.get_task(&request.task_id)?))
    }

    async fn update_task(
        &self,
        request: UpdateTaskParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        self.tasks
            .update_task(&request.task_id, request.input_responses)
    }

    async fn cancel_task(
        &self,
        request: CancelTaskParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        self.tasks.cancel_task(&request.task_id)
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, McpError> {
        Ok(ListResourceTemplatesResult::with_all_items(
            resources::templates(),
        ))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, McpError> {
        let (host, recent, user) = (self.host.clone(), self.recent.clone(), self.user(None));
        let uri = request.uri.clone();
        let body =
            tokio::task::spawn_blocking(move || resources::read(&host, &user, &uri, &recent))
                .await
                .map_err(|e| McpError::internal_error(e.to_string(), None))?
                .map_err(|e| resource_error(&e))?;
        let text = serde_json::to_string_pretty(&body).unwrap_or_default();
        Ok(ReadResourceResult::new(vec![
            ResourceContents::text(text, request.uri).with_mime_type("application/json"),
        ])
        .into())
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        Ok(ListToolsResult::with_all_items(self.tools()))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let args = Value::Object(request.arguments.clone().unwrap_or_default());
        let name = request.name.as_ref();
        if name == self.names.sync {
            let in_task = context
                .client_capabilities()
                .is_some_and(|caps| caps.supports_tasks());
            if !in_task {
                return Ok(self.call_sync(args, Call::Request(context)).await.into());
            }
            // A task: the call answers at once; the sync runs on, its
            // progress and result fetched with tasks/get.
            let (server, peer) = (self.clone(), context.peer.clone());
            let task = self.tasks.spawn(
                TaskOptions::new()
                    .with_poll_interval_ms(TASK_POLL_MS)
                    .with_status_message("starting"),
                move |task| {
                    Box::pin(async move {
                        let call = Call::Task {
                            peer,
                            task: task.clone(),
                        };
                        let result = server.call_sync(args, call).await;
                        if task.is_cancel_requested() {
                            Err(TaskExit::Cancelled)
                        } else {
                            Ok(result)
                        }
                    })
                },
            );
            return Ok(CallToolResponse::Task(CreateTaskResult::new(task)));
        }
        let host = self.host.clone();
        let result: Result<Value, Error> = if name == self.names.conflicts {
            validated::<ConflictsListArgs>(&schema_of::<ConflictsListArgs>(), &args).and_then(|a| {
                let rows = crate::review::visible_conflicts(&host, &self.user(a.user), a.all)?;
                let start = resources::parse_cursor(a.cursor.as_deref())?;
                let limit = a.limit.unwrap_or(resources::PAGE);
                let total = rows.len();
                let page: Vec<_> = rows.into_iter().skip(start).take(limit).collect();
                let mut v = json!({"total": total, "conflicts": page});
                if start + limit < total {
                    v["nextCursor"] = json!((start + limit).to_string());
                }
                Ok(v)
            })
        } else if name == self.names.resolve {
            self.blocking(&args, move |a: ResolveArgs, user| {
                crate::review::resolve(&host, &a.id, a.keep, &user)
            })
            .await?
        } else if name == self.names.undo {
            match confirm::undo(&self.host, &args, &Call::Request(context)).await {
                Some(declined) => Ok(declined),
                None => {
                    self.blocking(&args, move |a: UndoArgs, user| {
                        crate::review::undo(&host, &a.sync_id, a.force, &user)
                    })
                    .await?
                }
            }
        } else {
            return Err(McpError::invalid_params(
                format!(
                    "unknown tool `{name}`; this server offers {}, {}, {} and {}",
                    self.names.sync, self.names.conflicts, self.names.resolve, self.names.undo
                ),
                None,
            ));
        };
        Ok(match result {
            Ok(v) => CallToolResult::structured(v),
            Err(e) => tool_error(&e),
        }
        .into())
    }
}

/// A follow-up tool's arguments, with the user they name.
trait ToolArgs: serde::de::DeserializeOwned + JsonSchema + Send + 'static {
    fn user(&mut self) -> Option<String>;
}
impl ToolArgs for ResolveArgs {
    fn user(&mut self) -> Option<String> {
        self.user.take()
    }
}
impl ToolArgs for UndoArgs {
    fn user(&mut self) -> Option<String> {
        self.user.take()
    }
}

impl Server {
    /// Validates a follow-up tool's arguments, then runs `f` (which writes
    /// through the journalled commit) off the async threads.
    async fn blocking<A: ToolArgs>(
        &self,
        args: &Value,
        f: impl FnOnce(A, String) -> Result<Value, Error> + Send + 'static,
    ) -> Result<Result<Value, Error>, McpError> {
        let mut a = match validated::<A>(&schema_of::<A>(), args) {
            Ok(a) => a,
            Err(e) => return Ok(Err(e)),
        };
        let user = self.user(a.user());
        tokio::task::spawn_blocking(move || f(a, user))
            .await
            .map_err(|e| McpError::internal_error(e.to_string(), None))
    }

    /// The sync tool: a sync, and when the mass-delete guard stopped it and
    /// the client can ask its user, the question, and on a yes the same sync
    /// again with the deletions allowed (see [`confirm`]).
    async fn call_sync(&self, args: Value, call: Call) -> CallToolResult {
        let first = match self.run_sync(args.clone(), &call).await {
            Ok(rec) => rec,
            Err(e) => return sync_task_failed(&e),
        };
        let rec = match confirm::mass_delete(&first, &args, &call).await {
            confirm::Answer::Yes => {
                let mut again = args;
                again["allowMassDelete"] = Value::Bool(true);
                match self.run_sync(again, &call).await {
                    Ok(rec) => rec,
                    Err(e) => return sync_task_failed(&e),
                }
            }
            confirm::Answer::No(why) => {
                let mut result = self.sync_result(first);
                result.content.push(ContentBlock::text(format!(
                    "The user was asked to confirm the deletions and {why}; nothing was changed."
                )));
                return result;
            }
            confirm::Answer::NotAsked => first,
        };
        self.sync_result(rec)
    }

    /// One sync on the blocking threads, cancelled with the call.
    async fn run_sync(
        &self,
        args: Value,
        call: &Call,
    ) -> Result<crate::record::SyncRecord, tokio::task::JoinError> {
        let cancel = Cancel::default();
        let watcher = {
            let cancel = cancel.clone();
            let call = call.clone();
            tokio::spawn(async move {
                call.stopped().await;
                cancel.cancel();
            })
        };
        let progress = call.progress();
        let host = self.host.clone();
        let user = self.fallback_user.clone();
        let record = tokio::task::spawn_blocking(move || {
            let record = match &progress {
                Some(p) => host.sync(&args, &user, p.as_ref(), &cancel),
                None => host.sync(&args, &user, &crate::sync::Quiet, &cancel),
            };
            // A server lives on after the sync: what it freed goes back now
            // rather than staying with the process (see `memory`).
            crate::memory::release_freed_memory();
            record
        })
        .await;
        watcher.abort();
        record
    }
}

fn sync_task_failed(e: &tokio::task::JoinError) -> CallToolResult {
    tool_error(&Error::new(
        Code::StorageError,
        format!("the sync task failed: {e}"),
    ))
}

impl Server {
    /// A sync's tool result, small whatever the sync's size: the record with
    /// its planned ids capped ([`crate::record::PLAN_IDS_IN_RESULT`] a list)
    /// as structured content and text, and `resource_link`s to the whole
    /// record and, when the sync logged conflicts, to each domain's open
    /// conflicts.
    fn sync_result(&self, rec: crate::record::SyncRecord) -> CallToolResult {
        if !self.host.data.record_path(&rec.sync_id).exists() {
            // A dry run or a failed sync: no file, so the link is served
            // from memory.
            self.recent.keep(&rec);
        }
        let failed = rec.status == Status::Failed;
        let conflicts = rec.total().conflicts;
        let mut links = vec![
            Resource::new(resources::record_uri(&rec.sync_id), rec.sync_id.clone())
                .with_title(format!("Sync record {}", rec.sync_id))
                .with_mime_type("application/json"),
        ];
        if conflicts > 0 {
            for d in [&rec.source_domain, &rec.target_domain] {
                links.push(
                    Resource::new(resources::conflicts_uri(d), format!("conflicts-{d}"))
                        .with_title(format!("Open conflicts of `{d}`"))
                        .with_mime_type("application/json"),
                );
            }
        }
        let v = serde_json::to_value(rec.capped(crate::record::PLAN_IDS_IN_RESULT))
            .unwrap_or(Value::Null);
        let mut result = if failed {
            CallToolResult::structured_error(v)
        } else {
            CallToolResult::structured(v)
        };
        result
            .content
            .extend(links.into_iter().map(ContentBlock::resource_link));
        result
    }
}

/// How often a client should poll a sync's task (`tasks/get`).
const TASK_POLL_MS: u64 = 250;

/// A resource request's error: `-32002` for a resource that does not exist
/// (an unknown domain, a record with no file, a URI naming nothing), else
/// `-32602`; the data carries the contract's error object.
fn resource_error(e: &Error) -> McpError {
    let data = Some(e.to_json());
    if e.code == Code::DomainNotFound || e.details.contains_key("missing") {
        McpError::resource_not_found(e.message.clone(), data)
    } else {
        McpError::invalid_params(e.message.clone(), data)
    }
}

/// The parse-error answer for a line that is not JSON.
/// The longest message line the server reads: rmcp's own limit for a line
/// (16 MiB, its `DEFAULT_MAX_LINE_LENGTH`), less the newline, so that no line
/// reaches rmcp only to be dropped there.
pub const MAX_LINE: usize = (16 << 20) - 1;

/// How much of an oversized line is kept to find its id.
const HEAD: usize = 4096;

/// One line of input, read without ever holding more than [`MAX_LINE`].
enum Line {
    Text(String),
    /// Over the limit: its first bytes and its whole length.
    TooLong {
        head: Vec<u8>,
        len: usize,
    },
    /// Not UTF-8.
    Binary,
    Eof,
}

/// Reads the next line (its newline removed), bounded by `max`.
async fn read_line<R: tokio::io::AsyncBufRead + Unpin>(
    r: &mut R,
    max: usize,
) -> std::io::Result<Line> {
    let mut buf: Vec<u8> = Vec::new();
    let mut len = 0usize;
    let mut seen_any = false;
    loop {
        let chunk = r.fill_buf().await?;
        if chunk.is_empty() {
            if !seen_any {
                return Ok(Line::Eof);
            }
            break;
        }
        seen_any = true;
        let (take, done) = match memchr::memchr(b'\n', chunk) {
            Some(i) => (i, true),
            None => (chunk.len(), false),
        };
        let keep = if len <= max {
            take.min(max + 1 - len)
        } else {
            0
        };
        buf.extend_from_slice(&chunk[..keep]);
        len += take;
        r.consume(take + usize::from(done));
        if len > max && buf.len() > HEAD {
            buf.truncate(HEAD);
        }
        if done {
            break;
        }
    }
    if len > max {
        return Ok(Line::TooLong { head: buf, len });
    }
    Ok(String::from_utf8(buf).map_or(Line::Binary, Line::Text))
}

/// The top-level `"id"` of a JSON-RPC message from the start of its text,
/// when that start holds it whole (a number or a string); else `null`.
fn id_from_head(head: &[u8]) -> Value {
    let mut depth = 0usize;
    let mut i = 0;
    while i < head.len() {
        match head[i] {
            b'{' | b'[' => depth += 1,
            b'}' | b']' => depth = depth.saturating_sub(1),
            b'"' => {
                let start = i;
                i += 1;
                while i < head.len() && head[i] != b'"' {
                    i += if head[i] == b'\\' { 2 } else { 1 };
                }
                let Some(key) = head.get(start..=i) else {
                    return Value::Null;
                };
                let mut j = i + 1;
                while head.get(j).is_some_and(u8::is_ascii_whitespace) {
                    j += 1;
                }
                if depth == 1 && key == b"\"id\"" && head.get(j) == Some(&b':') {
                    // The value: parse the shortest prefix that is one JSON value.
                    let rest = &head[j + 1..];
                    let mut de = serde_json::Deserializer::from_slice(rest).into_iter::<Value>();
                    return match de.next() {
                        Some(Ok(v @ (Value::Number(_) | Value::String(_)))) => v,
                        _ => Value::Null,
                    };
                }
            }
            _ => {}
        }
        i += 1;
    }
    Value::Null
}

fn too_long(head: &[u8], len: usize) -> String {
    json!({"jsonrpc": "2.0", "id": id_from_head(head), "error": {"code": -32600, "message": format!(
        "Invalid Request: the message is {len} bytes, over this server's limit of {MAX_LINE} \
         bytes per line; it was not read. Send smaller messages (sync fewer entity types or \
         items per call)"
    )}})
    .to_string()
}

fn parse_error(e: &serde_json::Error) -> String {
    json!({"jsonrpc": "2.0", "id": null, "error": {"code": -32700, "message": format!("Parse error: {e}")}})
        .to_string()
}

/// A `tools/call` whose params are not `{name: string, arguments?: object}` is
/// invalid params (-32602); rmcp would call it an unknown method.
fn malformed_tool_call(v: &Value) -> Option<String> {
    if v.get("method").and_then(Value::as_str) != Some("tools/call") {
        return None;
    }
    let id = v.get("id")?;
    let params = v.get("params");
    let why = match params {
        Some(Value::Object(p)) => {
            if !p.get("name").is_some_and(Value::is_string) {
                Some("`params.name` must be the tool's name (a string)")
            } else if p
                .get("arguments")
                .is_some_and(|a| !a.is_object() && !a.is_null())
            {
                Some("`params.arguments` must be an object")
            } else {
                None
            }
        }
        _ => Some("`params` must be an object with the tool's `name` and `arguments`"),
    }?;
    Some(
        json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32602, "message": format!("Invalid params: {why}")}})
            .to_string(),
    )
}

/// Runs the server on stdin/stdout until end of input. Returns the exit status.
pub fn serve(host: Host, fallback_user: String) -> i32 {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("cannot start the async runtime: {e}");
            return 1;
        }
    };
    let code = rt.block_on(run(Server::new(host, fallback_user)));
    rt.shutdown_timeout(std::time::Duration::from_secs(2));
    code
}

/// The server's loop: read a line, answer or hand it to the service, until
/// the client closes stdin.
///
/// Long: one `select!` over stdin, the service's replies and shutdown, whose
/// arms must see each other's state (pending requests, cancellations).
async fn run(server: Server) -> i32 {
    let (mut to_rmcp, rmcp_in) = tokio::io::duplex(1 << 20);
    let (rmcp_out, from_rmcp) = tokio::io::duplex(1 << 20);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let cancelled: Arc<Mutex<HashSet<String>>> = Arc::default();

    // The one writer of stdout.
    let writer = tokio::spawn(async move {
        let mut out = tokio::io::stdout();
        while let Some(line) = rx.recv().await {
            if out.write_all(line.as_bytes()).await.is_err()
                || out.write_all(b"\n").await.is_err()
                || out.flush().await.is_err()
            {
                break;
            }
        }
    });

    // rmcp's output: drop responses to cancelled requests, pass the rest.
    let pass = {
        let tx = tx.clone();
        let cancelled = cancelled.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(from_rmcp).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if let Ok(v) = serde_json::from_str::<Value>(&line)
                    && (v.get("result").is_some() || v.get("error").is_some())
                    && let Some(id) = v.get("id")
                    && cancelled
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .contains(&id.to_string())
                {
                    tracing::info!("dropping the response to cancelled request {id}");
                    continue;
                }
                if tx.send(line).is_err() {
                    break;
                }
            }
        })
    };

    // stdin: answer non-JSON lines, note cancellations, feed rmcp.
    let feed = {
        let tx = tx.clone();
        let cancelled = cancelled.clone();
        tokio::spawn(async move {
            let mut input = BufReader::new(tokio::io::stdin());
            loop {
                let line = match read_line(&mut input, MAX_LINE).await {
                    Ok(Line::Text(line)) => line,
                    Ok(Line::TooLong { head, len }) => {
                        tracing::warn!("a message of {len} bytes is over the line limit; answered");
                        let _ = tx.send(too_long(&head, len));
                        continue;
                    }
                    Ok(Line::Binary) => {
                        let reply = json!({"jsonrpc": "2.0", "id": null, "error": {"code": -32700,
                            "message": "Parse error: the line is not UTF-8 text"}});
                        let _ = tx.send(reply.to_string());
                        continue;
                    }
                    Ok(Line::Eof) | Err(_) => break,
                };
                if line.trim().is_empty() {
                    continue;
                }
                match serde_json::from_str::<Value>(&line) {
                    Err(e) => {
                        let _ = tx.send(parse_error(&e));
                        continue;
                    }
                    Ok(v) => {
                        if let Some(reply) = malformed_tool_call(&v) {
                            let _ = tx.send(reply);
                            continue;
                        }
                        if v.get("method").and_then(Value::as_str)
                            == Some("notifications/cancelled")
                            && let Some(id) = v.pointer("/params/requestId")
                        {
                            cancelled
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .insert(id.to_string());
                        }
                    }
                }
                if to_rmcp.write_all(line.as_bytes()).await.is_err()
                    || to_rmcp.write_all(b"\n").await.is_err()
                {
                    break;
                }
            }
            // End of input: closing rmcp's input ends the service.
            let _ = to_rmcp.shutdown().await;
        })
    };

    let code = match server.serve((rmcp_in, rmcp_out)).await {
        Ok(service) => match service.waiting().await {
            Ok(_) => 0,
            Err(e) => {
                tracing::error!("the MCP service failed: {e}");
                1
            }
        },
        Err(e) => {
            tracing::error!("the MCP handshake failed: {e}");
            1
        }
    };
    feed.abort();
    let _ = pass.await;
    drop(tx);
    let _ = writer.await;
    code
}

#[cfg(test)]
mod line_tests {
    use super::*;

    #[test]
    fn the_id_is_read_from_the_top_level_only() {
        assert_eq!(
            id_from_head(br#"{"jsonrpc":"2.0","id":7,"params":{"#),
            json!(7)
        );
        assert_eq!(id_from_head(br#"{"id" : "a\"b", "x": 1"#), json!("a\"b"));
        assert_eq!(
            id_from_head(br#"{"params":{"id":3},"pad":"aaa"#),
            Value::Null
        );
        assert_eq!(id_from_head(br#"{"pad":"aaaaaaa"#), Value::Null);
        assert_eq!(id_from_head(br#"{"x":"\"id\":4","pad"#), Value::Null);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn lines_over_the_limit_are_measured_not_held() {
        let text = format!("short\n{}\nnext\nlast", "y".repeat(100));
        let mut r = BufReader::with_capacity(8, text.as_bytes());
        assert!(matches!(read_line(&mut r, 10).await.unwrap(), Line::Text(t) if t == "short"));
        match read_line(&mut r, 10).await.unwrap() {
            Line::TooLong { head, len } => {
                assert_eq!(len, 100);
                assert!(head.len() <= 11);
            }
            _ => panic!("not refused"),
        }
        assert!(matches!(read_line(&mut r, 10).await.unwrap(), Line::Text(t) if t == "next"));
        assert!(matches!(read_line(&mut r, 10).await.unwrap(), Line::Text(t) if t == "last"));
        assert!(matches!(read_line(&mut r, 10).await.unwrap(), Line::Eof));
    }
}
