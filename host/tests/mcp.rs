//! `cross-domain-sync serve` over real pipes (issue 5): both handshake
//! revisions, tools/list, valid and invalid calls, an unknown tool, a non-JSON
//! line, progress, cancellation with roll-back, end of input, follow-up tools,
//! and stdout holding nothing but JSON-RPC.

mod common;

use common::{Scratch, contact};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

struct Session {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    seen: Vec<String>,
}

impl Session {
    fn start(s: &Scratch, env: &[(&str, &str)]) -> Session {
        let mut cmd: Command = s.cmd();
        cmd.arg("serve")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stdin = child.stdin.take();
        Session {
            child,
            stdin,
            lines: rx,
            seen: Vec::new(),
        }
    }

    fn send(&mut self, v: Value) {
        self.raw(&v.to_string());
    }

    fn raw(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }

    /// The next message; every stdout line must be a JSON-RPC 2.0 message.
    fn next(&mut self, timeout: Duration) -> Option<Value> {
        match self.lines.recv_timeout(timeout) {
            Ok(line) => {
                let v: Value = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {line}"));
                assert_eq!(v["jsonrpc"], "2.0", "not JSON-RPC 2.0: {line}");
                self.seen.push(line);
                Some(v)
            }
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => None,
        }
    }

    /// Waits for the response with `id`, collecting notifications before it.
    fn response(&mut self, id: i64) -> (Value, Vec<Value>) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut notes = Vec::new();
        while Instant::now() < deadline {
            if let Some(v) = self.next(Duration::from_secs(60)) {
                if v["id"] == json!(id) {
                    return (v, notes);
                }
                notes.push(v);
            }
        }
        panic!("no response to {id}");
    }

    fn request(&mut self, id: i64, method: &str, params: Value) -> Value {
        self.send(json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        self.response(id).0
    }

    fn initialize(&mut self, version: &str) -> Value {
        let r = self.request(
            1,
            "initialize",
            json!({"protocolVersion": version, "capabilities": {},
            "clientInfo": {"name": "cds-test", "version": "0"}}),
        );
        self.send(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
        r
    }

    fn call(&mut self, id: i64, name: &str, args: Value) -> Value {
        self.request(id, "tools/call", json!({"name": name, "arguments": args}))
    }

    /// Closes stdin and waits for a clean exit.
    fn finish(self) -> (i32, String) {
        let (code, err, _) = self.finish_all();
        (code, err)
    }

    /// [`Session::finish`], with every stdout line the session saw.
    fn finish_all(mut self) -> (i32, String, Vec<String>) {
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                let mut err = String::new();
                use std::io::Read;
                self.child
                    .stderr
                    .take()
                    .unwrap()
                    .read_to_string(&mut err)
                    .unwrap();
                while self.next(Duration::from_millis(50)).is_some() {}
                return (status.code().unwrap_or(-1), err, self.seen);
            }
            assert!(
                Instant::now() < deadline,
                "the server did not exit on end of input"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// The `name` of each tool in a list of tools.
fn names_of(tools: &Value) -> Vec<&str> {
    tools
        .as_array()
        .expect("a list of tools")
        .iter()
        .map(|t| t["name"].as_str().expect("a tool's name"))
        .collect()
}

fn scratch() -> Scratch {
    let s = Scratch::new();
    s.write(
        "personal",
        "contacts",
        json!([
            contact(
                "c1",
                "Ann",
                json!({"category": "business", "notes": "private"})
            ),
            contact("c2", "Mum", json!({"category": "family"}))
        ]),
    );
    s
}

#[test]
fn handshake_in_the_revision_asked_for() {
    let s = scratch();
    for version in ["2025-11-25", "2025-06-18"] {
        let mut m = Session::start(&s, &[]);
        let r = m.initialize(version);
        assert_eq!(r["result"]["protocolVersion"], version, "{r}");
        assert_eq!(r["result"]["serverInfo"]["name"], "cross-domain-sync");
        assert!(r["result"]["capabilities"]["tools"].is_object());
        let (code, _) = m.finish();
        assert_eq!(code, 0);
    }
}

#[test]
fn the_newest_revision_without_a_handshake() {
    // 2026-07-28 (the SDK's newest) has no initialize: each request carries
    // its version and capabilities in _meta.
    let s = scratch();
    let mut m = Session::start(&s, &[]);
    let meta = json!({"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                      "io.modelcontextprotocol/clientCapabilities": {}});
    let r = m.request(2, "tools/list", json!({"_meta": meta}));
    assert!(r["result"]["tools"].as_array().is_some(), "{r}");
    let r = m.request(
        3,
        "tools/call",
        json!({"_meta": meta, "name": "gold_cross_domain_sync",
        "arguments": {"source": "personal", "target": "business", "entities": ["contacts"]}}),
    );
    assert_eq!(r["result"]["structuredContent"]["status"], "success", "{r}");
    assert_eq!(
        r["result"]["resultType"], "complete",
        "answered in 2026-07-28 form: {r}"
    );
    // An initialize naming 2026-07-28 is answered with the newest handshake revision.
    let r = m.initialize("2026-07-28");
    assert_eq!(r["result"]["protocolVersion"], "2025-11-25", "{r}");
    m.finish();
}

#[test]
fn tools_list_describes_the_skill() {
    let s = scratch();
    let mut m = Session::start(&s, &[]);
    m.initialize("2025-11-25");
    let r = m.request(2, "tools/list", json!({}));
    let tools = r["result"]["tools"].as_array().unwrap();
    let sync = tools
        .iter()
        .find(|t| t["name"] == "gold_cross_domain_sync")
        .unwrap();
    assert_eq!(sync["title"], "Cross-Domain Sync");
    assert!(
        sync["description"]
            .as_str()
            .unwrap()
            .starts_with("Synchronise contacts")
    );
    let input = &sync["inputSchema"];
    assert_eq!(
        input["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
    assert_eq!(input["additionalProperties"], false);
    assert_eq!(
        input["properties"]["source"]["enum"],
        json!(["personal", "business"])
    );
    assert_eq!(
        input["properties"]["entities"]["items"]["enum"]
            .as_array()
            .unwrap()
            .len(),
        5
    );
    assert_eq!(
        sync["outputSchema"]["title"],
        "cross-domain-sync sync record"
    );
    let ann = &sync["annotations"];
    assert_eq!(
        (
            ann["readOnlyHint"].as_bool(),
            ann["destructiveHint"].as_bool(),
            ann["idempotentHint"].as_bool(),
            ann["openWorldHint"].as_bool()
        ),
        (Some(false), Some(true), Some(true), Some(false))
    );
    let names = names_of(&r["result"]["tools"]);
    assert_eq!(
        names,
        [
            "gold_cross_domain_sync",
            "gold_cross_domain_sync_conflicts",
            "gold_cross_domain_sync_resolve_conflict",
            "gold_cross_domain_sync_undo"
        ]
    );
    m.finish();
}

#[test]
fn the_seed_names_come_by_configuration() {
    let s = scratch();
    s.config(json!({"mcp": {"toolNames": "seed"}}));
    let mut m = Session::start(&s, &[]);
    m.initialize("2025-11-25");
    let r = m.request(2, "tools/list", json!({}));
    let names = names_of(&r["result"]["tools"]);
    assert_eq!(
        names,
        [
            "gold.cross-domain-sync",
            "gold.cross-domain-sync.conflicts",
            "gold.cross-domain-sync.resolve-conflict",
            "gold.cross-domain-sync.undo"
        ]
    );
    let r = m.call(
        3,
        "gold.cross-domain-sync",
        json!({"source": "personal", "target": "business", "dryRun": true}),
    );
    assert_eq!(r["result"]["structuredContent"]["status"], "dry_run");
    m.finish();
    // The old switch still gives names without dots: the portable ones.
    s.config(json!({"mcp": {"underscoreToolName": true}}));
    let mut m = Session::start(&s, &[]);
    m.initialize("2025-11-25");
    let r = m.request(2, "tools/list", json!({}));
    assert_eq!(
        r["result"]["tools"][0]["name"], "gold_cross_domain_sync",
        "{r}"
    );
    m.finish();
}

/// What several model APIs and JavaScript clients (Ajv) refuse or warn of
/// in a tool's schemas: a name outside `^[a-zA-Z0-9_-]{1,64}$`, a `format`
/// JSON Schema does not define, a top level that is not `type: object`, or
/// a top-level `oneOf` / `anyOf` / `allOf`.
#[test]
fn every_tool_is_portable() {
    // JSON Schema 2020-12's format vocabulary, written out here rather than
    // taken from the host's own list (validate.rs), so that a wrong entry
    // there cannot make this test pass.
    const STANDARD: &[&str] = &[
        "date-time",
        "date",
        "time",
        "duration",
        "email",
        "idn-email",
        "hostname",
        "idn-hostname",
        "ipv4",
        "ipv6",
        "uri",
        "uri-reference",
        "iri",
        "iri-reference",
        "uuid",
        "uri-template",
        "json-pointer",
        "relative-json-pointer",
        "regex",
    ];
    fn formats(v: &Value, at: &str, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                if let Some(f) = m.get("format").and_then(Value::as_str)
                    && !STANDARD.contains(&f)
                {
                    out.push(format!("{at}: {f}"));
                }
                for (k, x) in m {
                    if !matches!(k.as_str(), "const" | "enum" | "default" | "examples") {
                        formats(x, &format!("{at}/{k}"), out);
                    }
                }
            }
            Value::Array(a) => {
                for (i, x) in a.iter().enumerate() {
                    formats(x, &format!("{at}/{i}"), out);
                }
            }
            _ => {}
        }
    }
    let s = scratch();
    let mut m = Session::start(&s, &[]);
    m.initialize("2025-11-25");
    let r = m.request(2, "tools/list", json!({}));
    let tools = r["result"]["tools"].as_array().unwrap();
    assert_eq!(tools.len(), 4);
    let mut outputs = 0;
    for t in tools {
        let name = t["name"].as_str().unwrap();
        assert!(
            !name.is_empty()
                && name.len() <= 64
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'),
            "{name}"
        );
        for key in ["inputSchema", "outputSchema"] {
            let Some(schema) = t.get(key) else { continue };
            outputs += usize::from(key == "outputSchema");
            assert_eq!(schema["type"], "object", "{name} {key}");
            for combinator in ["oneOf", "anyOf", "allOf"] {
                assert!(
                    schema.get(combinator).is_none(),
                    "{name} {key} has a top-level {combinator}"
                );
            }
            let mut bad = Vec::new();
            formats(schema, "#", &mut bad);
            assert!(bad.is_empty(), "{name} {key}: non-standard formats {bad:?}");
        }
    }
    assert!(outputs >= 1, "the sync tool publishes its output schema");
    m.finish();
}

#[test]
fn a_valid_call_syncs_with_progress_and_audit() {
    let s = scratch();
    let mut m = Session::start(&s, &[]);
    m.initialize("2025-11-25");
    m.send(
        json!({"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": {
        "name": "gold_cross_domain_sync", "_meta": {"progressToken": "tok-1"},
        "arguments": {"source": "personal", "target": "business", "entities": ["contacts", "tasks"],
                      "user": "mcp-user", "session": "conversation-42"}}}),
    );
    let (r, notes) = m.response(5);
    let result = &r["result"];
    assert_eq!(result["isError"], false, "{r}");
    let rec = &result["structuredContent"];
    assert_eq!(rec["status"], "success");
    assert_eq!(rec["results"]["contacts"]["added"], 1);
    assert_eq!(rec["results"]["contacts"]["withheld"], 1);
    let text: Value = serde_json::from_str(result["content"][0]["text"].as_str().unwrap()).unwrap();
    assert_eq!(&text, rec, "the JSON text is the same record");
    // Progress per entity type, with the caller's token, before the response.
    let progress: Vec<&Value> = notes
        .iter()
        .filter(|n| n["method"] == "notifications/progress")
        .collect();
    assert!(progress.len() >= 4, "{notes:?}");
    assert!(
        progress
            .iter()
            .all(|p| p["params"]["progressToken"] == "tok-1")
    );
    assert!(
        progress
            .iter()
            .any(|p| p["params"]["message"] == "Syncing contacts entities...")
    );
    assert_eq!(progress.last().unwrap()["params"]["progress"], 2.0);
    assert_eq!(s.items("business", "contacts").len(), 1);
    assert!(
        s.item("business", "contacts", "c1")
            .unwrap()
            .get("notes")
            .is_none()
    );
    let entry = s.audit().pop().unwrap();
    assert_eq!(
        (entry["user"].as_str(), entry["session"].as_str()),
        (Some("mcp-user"), Some("conversation-42"))
    );
    let (code, stderr) = m.finish();
    assert_eq!(code, 0, "{stderr}");
}

#[test]
fn an_invalid_call_is_a_tool_error_with_every_path() {
    let s = scratch();
    let mut m = Session::start(&s, &[]);
    m.initialize("2025-11-25");
    let r = m.call(
        2,
        "gold_cross_domain_sync",
        json!({"source": "personal", "target": "mars",
        "direction": "sideways", "colour": "blue"}),
    );
    let result = &r["result"];
    assert_eq!(result["isError"], true, "{r}");
    let err = &result["structuredContent"]["errors"][0];
    assert_eq!(err["code"], "INVALID_ARGUMENT");
    let paths: Vec<&str> = err["paths"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    for p in ["$.direction", "$.target", "$"] {
        assert!(paths.contains(&p), "{p} missing from {paths:?}");
    }
    // Follow-up tools validate too.
    let r = m.call(3, "gold_cross_domain_sync_undo", json!({"force": "yes"}));
    assert_eq!(r["result"]["isError"], true);
    assert_eq!(
        r["result"]["structuredContent"]["errors"][0]["code"],
        "INVALID_ARGUMENT"
    );
    // Nothing ran, but the refused sync is audited like on the command line.
    assert!(!s.data().join("business/contacts.json").exists());
    assert_eq!(
        s.audit().pop().unwrap()["errors"][0]["code"],
        "INVALID_ARGUMENT"
    );
    m.finish();
}

#[test]
fn protocol_faults_get_json_rpc_errors() {
    let s = scratch();
    let mut m = Session::start(&s, &[]);
    m.initialize("2025-11-25");
    m.raw("this is not json {");
    let r = m.next(Duration::from_secs(10)).unwrap();
    assert_eq!(r["id"], Value::Null);
    assert_eq!(r["error"]["code"], -32700);
    let r = m.call(2, "no.such.tool", json!({}));
    assert_eq!(r["error"]["code"], -32602, "{r}");
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unknown tool `no.such.tool`")
    );
    let r = m.request(3, "no/such/method", json!({}));
    assert_eq!(r["error"]["code"], -32601, "{r}");
    let r = m.request(4, "tools/call", json!({"arguments": 5}));
    assert_eq!(r["error"]["code"], -32602, "{r}");
    // Still serving.
    let r = m.request(5, "ping", json!({}));
    assert!(r["result"].is_object(), "{r}");
    m.finish();
}

/// A line over the size limit (16 MiB) gets a JSON-RPC error, with the id
/// when it can be read and null when not, and the server keeps serving
/// (issue 15, defect 11: it was dropped with only a log line).
#[test]
fn an_oversized_line_is_answered_and_serving_goes_on() {
    let s = scratch();
    let mut m = Session::start(&s, &[]);
    m.initialize("2025-11-25");
    let pad = "a".repeat(17 << 20);
    m.raw(&format!(
        r#"{{"jsonrpc":"2.0","id":7,"method":"tools/list","params":{{"pad":"{pad}"}}}}"#
    ));
    let (r, _) = m.response(7);
    assert_eq!(r["error"]["code"], -32600, "{r}");
    assert!(
        r["error"]["message"].as_str().unwrap().contains("limit"),
        "{r}"
    );
    m.raw(&format!(r#"{{"pad":"{pad}","jsonrpc":"2.0","id":8}}"#));
    let r = m.next(Duration::from_secs(30)).expect("an answer");
    assert_eq!(r["id"], Value::Null, "{r}");
    assert_eq!(r["error"]["code"], -32600, "{r}");
    let r = m.request(9, "ping", json!({}));
    assert!(r["result"].is_object(), "{r}");
    m.finish();
}

#[test]
fn cancellation_rolls_back_and_sends_no_response() {
    let s = scratch();
    let before = s.snapshot();
    // Each entity type's work is held up, so the cancellation arrives while
    // the sync runs; the test waits for events, never for a fixed time.
    let mut m = Session::start(&s, &[("CDS_FAULT_DELAY_MS", "1500")]);
    m.initialize("2025-11-25");
    m.send(
        json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {
        "name": "gold_cross_domain_sync", "_meta": {"progressToken": "tok-7"},
        "arguments": {"source": "personal", "target": "business", "entities": ["contacts"]}}}),
    );
    // The sync has started once it reports its first entity type.
    let mut seen = Vec::new();
    loop {
        let v = m
            .next(Duration::from_secs(60))
            .expect("progress before a response");
        assert_ne!(
            v["id"],
            json!(7),
            "answered before it could be cancelled: {v}"
        );
        if v["method"] == "notifications/progress" {
            break;
        }
        seen.push(v);
    }
    m.send(
        json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
        "params": {"requestId": 7, "reason": "the user changed their mind"}}),
    );
    // The attempt ends when its failure is audited; the server then answers
    // a later request, but never request 7.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !s.audit().iter().any(|e| e["outcome"] == "failed") {
        assert!(
            Instant::now() < deadline,
            "the cancelled sync was never audited"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let (r, notes) = m.ping_response(8);
    assert!(r["result"].is_object(), "{r}");
    assert!(
        seen.iter().chain(&notes).all(|n| n["id"] != json!(7)),
        "a response to the cancelled request: {notes:?}"
    );
    assert_eq!(s.snapshot(), before, "rolled back: no domain changed");
    let entry = s.audit().pop().unwrap();
    assert_eq!(entry["outcome"], "failed");
    assert_eq!(entry["errors"][0]["code"], "TIMEOUT");
    // Nothing answers request 7 before the server exits either.
    let (code, _, lines) = m.finish_all();
    assert_eq!(code, 0);
    let answered_7 = lines
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .any(|v| v["id"] == json!(7));
    assert!(
        !answered_7,
        "a response to the cancelled request: {lines:?}"
    );
}

impl Session {
    fn ping_response(&mut self, id: i64) -> (Value, Vec<Value>) {
        self.send(json!({"jsonrpc": "2.0", "id": id, "method": "ping"}));
        self.response(id)
    }
}

#[test]
fn follow_up_tools_review_and_undo() {
    let s = Scratch::new();
    s.write(
        "personal",
        "contacts",
        json!([contact(
            "c",
            "Ann",
            json!({"title": "CTO", "category": "business"})
        )]),
    );
    s.write(
        "business",
        "contacts",
        json!([contact("c", "Ann", json!({"title": "VP"}))]),
    );
    let mut m = Session::start(&s, &[]);
    m.initialize("2025-11-25");
    let r = m.call(
        2,
        "gold_cross_domain_sync",
        json!({"source": "personal", "target": "business",
        "direction": "bidirectional", "entities": ["contacts"]}),
    );
    let rec = &r["result"]["structuredContent"];
    assert_eq!(rec["results"]["contacts"]["conflicts"], 1);
    let sync_id = rec["syncId"].as_str().unwrap().to_string();
    let r = m.call(3, "gold_cross_domain_sync_conflicts", json!({}));
    let conflicts = r["result"]["structuredContent"]["conflicts"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(conflicts.len(), 1);
    assert_eq!(conflicts[0]["targetValue"], "VP");
    let r = m.call(
        4,
        "gold_cross_domain_sync_resolve_conflict",
        json!({"id": conflicts[0]["id"], "keep": "target"}),
    );
    assert_eq!(r["result"]["isError"], false, "{r}");
    assert_eq!(s.item("personal", "contacts", "c").unwrap()["title"], "VP");
    // Undo of the sync is refused: the resolution changed the same item.
    let r = m.call(5, "gold_cross_domain_sync_undo", json!({"syncId": sync_id}));
    assert_eq!(r["result"]["isError"], true);
    assert_eq!(
        r["result"]["structuredContent"]["errors"][0]["code"],
        "SYNC_CONFLICT"
    );
    let r = m.call(
        6,
        "gold_cross_domain_sync_undo",
        json!({"syncId": sync_id, "force": true}),
    );
    assert_eq!(r["result"]["isError"], false, "{r}");
    m.finish();
}

#[test]
fn end_of_input_exits_cleanly_and_stdout_is_only_json_rpc() {
    let s = scratch();
    let mut m = Session::start(&s, &[("CDS_LOG", "debug")]);
    m.initialize("2025-11-25");
    m.call(
        2,
        "gold_cross_domain_sync",
        json!({"source": "personal", "target": "business"}),
    );
    let (code, stderr) = m.finish();
    assert_eq!(code, 0);
    assert!(stderr.contains("DEBUG"), "logs go to stderr");
}

/// The MCP Bundle's manifest (packaging/mcpb) names the tools the server
/// offers, at the crate's version.
#[test]
fn the_bundle_manifest_matches_the_server() {
    let path = common::workspace().join("packaging/mcpb/manifest.json");
    let manifest: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(manifest["version"], env!("CARGO_PKG_VERSION"));
    let listed = names_of(&manifest["tools"]);
    let s = scratch();
    let mut m = Session::start(&s, &[]);
    m.initialize("2025-11-25");
    let r = m.request(2, "tools/list", json!({}));
    let offered = names_of(&r["result"]["tools"]);
    assert_eq!(listed, offered);
    assert_eq!(manifest["server"]["mcp_config"]["args"][0], "serve");
    m.finish();
}

impl Session {
    /// Initialises declaring the client capabilities `caps`.
    fn initialize_with(&mut self, caps: Value) -> Value {
        let r = self.request(
            1,
            "initialize",
            json!({"protocolVersion": "2025-11-25", "capabilities": caps,
            "clientInfo": {"name": "cds-test", "version": "0"}}),
        );
        self.send(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
        r
    }

    /// Calls a tool, answering every `elicitation/create` the server sends
    /// before its response with `answer`; returns the response and the
    /// questions asked.
    fn call_answering(
        &mut self,
        id: i64,
        name: &str,
        args: Value,
        answer: &Value,
    ) -> (Value, Vec<Value>) {
        self.send(json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
            "params": {"name": name, "arguments": args}}));
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut asked = Vec::new();
        while Instant::now() < deadline {
            let Some(v) = self.next(Duration::from_secs(60)) else {
                continue;
            };
            if v["method"] == "elicitation/create" {
                self.send(json!({"jsonrpc": "2.0", "id": v["id"], "result": answer}));
                asked.push(v);
            } else if v["id"] == json!(id) && v.get("method").is_none() {
                return (v, asked);
            }
        }
        panic!("no response to {id}");
    }

    /// `resources/read` of `uri`: the parsed JSON text of its one content,
    /// or the JSON-RPC error.
    fn read(&mut self, id: i64, uri: &str) -> Result<Value, Value> {
        let r = self.request(id, "resources/read", json!({"uri": uri}));
        if let Some(e) = r.get("error") {
            return Err(e.clone());
        }
        let c = &r["result"]["contents"];
        assert_eq!(c.as_array().map(Vec::len), Some(1), "{r}");
        assert_eq!(c[0]["uri"], uri);
        assert_eq!(c[0]["mimeType"], "application/json");
        Ok(serde_json::from_str(c[0]["text"].as_str().unwrap()).unwrap())
    }
}

/// Two contacts both domains agree on after a first sync; then business's
/// file is emptied, which the mass-delete guard stops.
fn emptied_business() -> Scratch {
    let s = Scratch::new();
    s.write(
        "personal",
        "contacts",
        json!([
            contact("c1", "Ann", json!({"category": "business"})),
            contact("c2", "Bo", json!({"category": "business"}))
        ]),
    );
    let out = s
        .cmd()
        .args(["--source", "personal", "--target", "business"])
        .args(["--direction", "bidirectional", "--entities", "contacts"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(s.items("business", "contacts").len(), 2);
    s.write("business", "contacts", json!([]));
    s
}

const BIDI_CONTACTS: fn() -> Value = || {
    json!({"source": "personal", "target": "business",
        "direction": "bidirectional", "entities": ["contacts"]})
};

#[test]
fn a_mass_deletion_is_confirmed_when_the_user_accepts() {
    let s = emptied_business();
    let mut m = Session::start(&s, &[]);
    m.initialize_with(json!({"elicitation": {"form": {}}}));
    let yes = json!({"action": "accept", "content": {"confirm": true}});
    let (r, asked) = m.call_answering(2, "gold_cross_domain_sync", BIDI_CONTACTS(), &yes);
    assert_eq!(asked.len(), 1, "one question: {asked:?}");
    let q = &asked[0]["params"];
    let msg = q["message"].as_str().unwrap();
    assert!(
        msg.contains("`business` lists no contacts")
            && msg.contains("would delete 2 contacts items"),
        "{msg}"
    );
    assert_eq!(
        q["requestedSchema"]["properties"]["confirm"]["type"], "boolean",
        "{q}"
    );
    assert_eq!(r["result"]["isError"], false, "{r}");
    assert_eq!(
        r["result"]["structuredContent"]["results"]["contacts"]["deleted"],
        2
    );
    assert!(s.items("personal", "contacts").is_empty());
    m.finish();
}

#[test]
fn a_mass_deletion_the_user_declines_changes_nothing() {
    let s = emptied_business();
    let before = s.snapshot();
    let mut m = Session::start(&s, &[]);
    m.initialize_with(json!({"elicitation": {}}));
    for (id, answer) in [
        (2, json!({"action": "decline"})),
        (
            3,
            json!({"action": "accept", "content": {"confirm": false}}),
        ),
        (4, json!({"action": "cancel"})),
    ] {
        let (r, asked) = m.call_answering(id, "gold_cross_domain_sync", BIDI_CONTACTS(), &answer);
        assert_eq!(asked.len(), 1, "{answer}");
        assert_eq!(r["result"]["isError"], true, "{r}");
        let rec = &r["result"]["structuredContent"];
        assert_eq!(rec["errors"][0]["code"], "SYNC_CONFLICT");
        assert_eq!(rec["errors"][0]["guard"], "massDelete");
        let said = r["result"]["content"].to_string();
        assert!(said.contains("nothing was changed"), "{said}");
    }
    assert_eq!(s.snapshot(), before, "a declined deletion wrote nothing");
    m.finish();
}

#[test]
fn without_elicitation_the_guard_refuses_and_the_flag_still_works() {
    let s = emptied_business();
    let mut m = Session::start(&s, &[]);
    m.initialize_with(json!({}));
    let never = json!({"action": "accept", "content": {"confirm": true}});
    let (r, asked) = m.call_answering(2, "gold_cross_domain_sync", BIDI_CONTACTS(), &never);
    assert!(
        asked.is_empty(),
        "a client without the capability is not asked"
    );
    assert_eq!(r["result"]["isError"], true, "{r}");
    assert_eq!(s.items("personal", "contacts").len(), 2);
    let mut args = BIDI_CONTACTS();
    args["allowMassDelete"] = json!(true);
    let (r, asked) = m.call_answering(3, "gold_cross_domain_sync", args, &never);
    assert!(asked.is_empty());
    assert_eq!(r["result"]["isError"], false, "{r}");
    assert!(s.items("personal", "contacts").is_empty());
    m.finish();
}

#[test]
fn an_undo_is_confirmed_first_where_the_client_can_ask() {
    let s = Scratch::new();
    s.write(
        "personal",
        "contacts",
        json!([contact("c1", "Ann", json!({"category": "business"}))]),
    );
    let mut m = Session::start(&s, &[]);
    m.initialize_with(json!({"elicitation": {"form": {}}}));
    let none = json!({});
    let (r, _) = m.call_answering(2, "gold_cross_domain_sync", BIDI_CONTACTS(), &none);
    let sync_id = r["result"]["structuredContent"]["syncId"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(s.items("business", "contacts").len(), 1);
    // No question about a sync that does not exist: the undo's own error.
    let yes = json!({"action": "accept", "content": {"confirm": true}});
    let (r, asked) = m.call_answering(
        9,
        "gold_cross_domain_sync_undo",
        json!({"syncId": "sync-19990101-000000"}),
        &yes,
    );
    assert!(asked.is_empty(), "{asked:?}");
    assert_eq!(r["result"]["isError"], true, "{r}");
    let no = json!({"action": "decline"});
    let (r, asked) = m.call_answering(
        3,
        "gold_cross_domain_sync_undo",
        json!({"syncId": sync_id}),
        &no,
    );
    assert_eq!(asked.len(), 1);
    let msg = asked[0]["params"]["message"].as_str().unwrap();
    assert!(msg.contains(&sync_id) && msg.contains("added 1"), "{msg}");
    assert_eq!(r["result"]["structuredContent"]["undone"], false, "{r}");
    assert_eq!(
        s.items("business", "contacts").len(),
        1,
        "declined: not undone"
    );
    let yes = json!({"action": "accept", "content": {"confirm": true}});
    let (r, asked) = m.call_answering(
        4,
        "gold_cross_domain_sync_undo",
        json!({"syncId": sync_id}),
        &yes,
    );
    assert_eq!(asked.len(), 1);
    assert_eq!(r["result"]["isError"], false, "{r}");
    assert!(s.items("business", "contacts").is_empty(), "undone");
    m.finish();
}

#[test]
fn resources_hold_records_conflicts_and_the_audit_trail() {
    let s = Scratch::new();
    s.config(json!({"users": {
        "tester": {"personal": ["read", "write"], "business": ["read", "write"]},
        "bob": {"personal": ["read"]}
    }}));
    s.write(
        "personal",
        "contacts",
        json!([contact(
            "c",
            "Ann",
            json!({"title": "CTO", "category": "business"})
        )]),
    );
    s.write(
        "business",
        "contacts",
        json!([contact("c", "Ann", json!({"title": "VP"}))]),
    );
    let mut m = Session::start(&s, &[]);
    let init = m.initialize("2025-11-25");
    assert!(
        init["result"]["capabilities"]["resources"].is_object(),
        "{init}"
    );
    let r = m.call(2, "gold_cross_domain_sync", BIDI_CONTACTS());
    let sync_id = r["result"]["structuredContent"]["syncId"]
        .as_str()
        .unwrap()
        .to_string();
    let links: Vec<&str> = r["result"]["content"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["type"] == "resource_link")
        .map(|c| c["uri"].as_str().unwrap())
        .collect();
    let record_uri = format!("cross-domain-sync://sync/{sync_id}");
    assert_eq!(
        links,
        [
            record_uri.as_str(),
            "cross-domain-sync://conflicts/personal",
            "cross-domain-sync://conflicts/business"
        ]
    );
    let t = m.request(3, "resources/templates/list", json!({}));
    let templates: Vec<&str> = t["result"]["resourceTemplates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["uriTemplate"].as_str().unwrap())
        .collect();
    assert!(
        templates.contains(&"cross-domain-sync://sync/{syncId}{?user}"),
        "{templates:?}"
    );
    assert!(templates.contains(&"cross-domain-sync://conflicts/{domain}{?cursor,user}"));
    let l = m.request(4, "resources/list", json!({}));
    let listed = l["result"]["resources"].to_string();
    assert!(
        listed.contains(&record_uri) && listed.contains("audit/verify"),
        "{listed}"
    );

    let rec = m.read(5, &record_uri).unwrap();
    assert_eq!(rec["syncId"], sync_id.as_str());
    assert_eq!(rec["results"]["contacts"]["conflicts"], 1);
    let c = m.read(6, "cross-domain-sync://conflicts/business").unwrap();
    assert_eq!(c["total"], 1);
    assert_eq!(c["conflicts"][0]["targetValue"], "VP");
    // bob may not read business: its value is hidden from him, as on the
    // command line.
    let c = m
        .read(7, "cross-domain-sync://conflicts/business?user=bob")
        .unwrap();
    let hidden = c["conflicts"][0]["targetValue"].as_str().unwrap();
    assert!(
        hidden.contains("hidden") && !hidden.contains("VP"),
        "{hidden}"
    );
    assert!(!c.to_string().contains("\"VP\""), "{c}");

    let v = m.read(8, "cross-domain-sync://audit/verify").unwrap();
    assert_eq!(
        (v["ok"].clone(), v["entries"].clone()),
        (json!(true), json!(1))
    );
    let tail = m.read(9, "cross-domain-sync://audit/tail?limit=1").unwrap();
    assert_eq!(tail["entries"].as_array().unwrap().len(), 1);
    assert_eq!(tail["entries"][0]["syncId"], sync_id.as_str());

    let e = m
        .read(10, "cross-domain-sync://sync/sync-19990101-000000")
        .unwrap_err();
    assert_eq!(e["code"], -32002, "{e}");
    let e = m
        .read(11, "cross-domain-sync://conflicts/nowhere")
        .unwrap_err();
    assert_eq!(e["code"], -32002, "{e}");
    let e = m
        .read(12, "cross-domain-sync://audit/tail?limit=0")
        .unwrap_err();
    assert_eq!(e["code"], -32602, "{e}");
    m.finish();
}

#[test]
fn a_large_dry_run_returns_counts_and_a_link_not_every_id() {
    let s = Scratch::new();
    let many: Vec<Value> = (0..250)
        .map(|i| contact(&format!("c{i:03}"), "N", json!({"category": "business"})))
        .collect();
    s.write("personal", "contacts", json!(many));
    let mut m = Session::start(&s, &[]);
    m.initialize("2025-11-25");
    let mut args = BIDI_CONTACTS();
    args["dryRun"] = json!(true);
    let r = m.call(2, "gold_cross_domain_sync", args);
    let rec = &r["result"]["structuredContent"];
    assert_eq!(rec["status"], "dry_run", "{r}");
    let added = rec["plan"]["contacts"]["business"]["added"]
        .as_array()
        .unwrap();
    assert_eq!(added.len(), 100, "capped in the result");
    assert_eq!(rec["planIdsOmitted"], 150);
    // The whole plan is behind the link, though a dry run writes no record.
    let id = rec["syncId"].as_str().unwrap();
    let whole = m
        .read(3, &format!("cross-domain-sync://sync/{id}"))
        .unwrap();
    assert_eq!(
        whole["plan"]["contacts"]["business"]["added"]
            .as_array()
            .unwrap()
            .len(),
        250
    );
    assert!(whole.get("planIdsOmitted").is_none());
    m.finish();
}

#[test]
fn the_conflicts_tool_pages_with_a_cursor() {
    let s = Scratch::new();
    let mk = |title: &str| -> Vec<Value> {
        (0..5)
            .map(|i| {
                contact(
                    &format!("c{i}"),
                    "N",
                    json!({"title": title, "category": "business"}),
                )
            })
            .collect()
    };
    s.write("personal", "contacts", json!(mk("A")));
    s.write("business", "contacts", json!(mk("B")));
    let mut m = Session::start(&s, &[]);
    m.initialize("2025-11-25");
    m.call(2, "gold_cross_domain_sync", BIDI_CONTACTS());
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for id in 3.. {
        let mut args = json!({"limit": 2});
        if let Some(c) = &cursor {
            args["cursor"] = json!(c);
        }
        let r = m.call(id, "gold_cross_domain_sync_conflicts", args);
        let page = &r["result"]["structuredContent"];
        assert_eq!(page["total"], 5, "{r}");
        for c in page["conflicts"].as_array().unwrap() {
            seen.push(c["id"].as_str().unwrap().to_string());
        }
        match page["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
        assert!(id < 10, "the pages never end");
    }
    let mut unique = seen.clone();
    unique.dedup();
    assert_eq!((seen.len(), unique.len()), (5, 5), "{seen:?}");
    let r = m.call(
        20,
        "gold_cross_domain_sync_conflicts",
        json!({"cursor": "nope"}),
    );
    assert_eq!(r["result"]["isError"], true, "{r}");
    m.finish();
}

const TASKS: &str = "io.modelcontextprotocol/tasks";

impl Session {
    /// `tasks/get` until `done(status)` holds; the last task state.
    fn poll_task(&mut self, first_id: i64, task_id: &str, done: impl Fn(&str) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        for id in first_id.. {
            let r = self.request(id, "tasks/get", json!({"taskId": task_id}));
            let t = r["result"].clone();
            assert!(t.is_object(), "{r}");
            if done(t["status"].as_str().unwrap_or("")) {
                return t;
            }
            assert!(Instant::now() < deadline, "the task never got there: {t}");
            std::thread::sleep(Duration::from_millis(20));
        }
        unreachable!()
    }
}

#[test]
fn a_sync_runs_as_a_task_where_the_client_declares_tasks() {
    let s = scratch();
    let mut m = Session::start(&s, &[]);
    let init = m.initialize_with(json!({"extensions": {TASKS: {}}}));
    assert!(
        init["result"]["capabilities"]["extensions"][TASKS].is_object(),
        "{init}"
    );
    let r = m.call(
        2,
        "gold_cross_domain_sync",
        json!({"source": "personal", "target": "business", "entities": ["contacts"]}),
    );
    let task = &r["result"];
    assert_eq!(
        task["resultType"], "task",
        "the call answers with a task: {r}"
    );
    assert!(
        task["status"] == "working" || task["status"] == "completed",
        "{r}"
    );
    let id = task["taskId"].as_str().unwrap().to_string();
    let done = m.poll_task(10, &id, |s| s != "working");
    assert_eq!(done["status"], "completed", "{done}");
    let rec = &done["result"]["structuredContent"];
    assert_eq!(rec["status"], "success", "{done}");
    assert_eq!(rec["results"]["contacts"]["added"], 1);
    let said = done["statusMessage"].as_str().unwrap_or("");
    assert!(
        said.contains("1 of 1 types done"),
        "progress is in the task: {said}"
    );
    assert!(s.item("business", "contacts", "c1").is_some());
    // A client without the extension gets the plain result, as before.
    let mut plain = Session::start(&s, &[]);
    plain.initialize("2025-11-25");
    let r = plain.call(
        2,
        "gold_cross_domain_sync",
        json!({"source": "personal", "target": "business", "entities": ["contacts"]}),
    );
    assert_eq!(r["result"]["structuredContent"]["status"], "success", "{r}");
    m.finish();
    plain.finish();
}

#[test]
fn a_sync_task_is_cancelled_with_tasks_cancel() {
    let s = scratch();
    s.write(
        "personal",
        "tasks",
        json!([{"id": "t1", "title": "Plan", "status": "todo", "category": "business",
            "lastModified": "2026-01-12T10:00:00Z"}]),
    );
    let before = s.snapshot();
    let mut m = Session::start(&s, &[("CDS_FAULT_DELAY_MS", "1500")]);
    m.initialize_with(json!({"extensions": {TASKS: {}}}));
    let r = m.call(
        2,
        "gold_cross_domain_sync",
        json!({"source": "personal", "target": "business", "direction": "bidirectional",
            "entities": ["contacts", "tasks"]}),
    );
    let id = r["result"]["taskId"].as_str().unwrap().to_string();
    let c = m.request(3, "tasks/cancel", json!({"taskId": id}));
    assert!(c.get("error").is_none(), "{c}");
    let t = m.poll_task(10, &id, |s| s != "working");
    assert_eq!(t["status"], "cancelled", "{t}");
    // The sync stopped at its next check, rolled back and was audited.
    let deadline = Instant::now() + Duration::from_secs(60);
    let audit = s.data().join("audit/audit.jsonl");
    while !std::fs::read_to_string(&audit).is_ok_and(|a| a.contains("\"failed\"")) {
        assert!(
            Instant::now() < deadline,
            "the cancelled sync was not audited"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(s.snapshot(), before, "a cancelled task changed nothing");
    m.finish();
}

#[test]
fn a_task_asks_its_confirmation_as_an_input_request() {
    let s = emptied_business();
    let mut m = Session::start(&s, &[]);
    m.initialize_with(json!({"extensions": {TASKS: {}}, "elicitation": {"form": {}}}));
    let r = m.call(2, "gold_cross_domain_sync", BIDI_CONTACTS());
    let id = r["result"]["taskId"].as_str().unwrap().to_string();
    let t = m.poll_task(10, &id, |s| s != "working");
    assert_eq!(t["status"], "input_required", "{t}");
    let q = &t["inputRequests"]["confirm"];
    assert_eq!(q["method"], "elicitation/create", "{t}");
    assert!(
        q["params"]["message"]
            .as_str()
            .unwrap()
            .contains("would delete 2 contacts items")
    );
    let u = m.request(
        100,
        "tasks/update",
        json!({"taskId": id, "inputResponses": {"confirm": {"action": "accept", "content": {"confirm": true}}}}),
    );
    assert!(u.get("error").is_none(), "{u}");
    let t = m.poll_task(101, &id, |s| {
        s == "completed" || s == "failed" || s == "cancelled"
    });
    assert_eq!(t["status"], "completed", "{t}");
    assert_eq!(
        t["result"]["structuredContent"]["results"]["contacts"]["deleted"], 2,
        "{t}"
    );
    assert!(s.items("personal", "contacts").is_empty());
    m.finish();
}
