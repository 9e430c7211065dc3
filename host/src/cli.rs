//! The command line: raw flags (clap) → the invocation's JSON form → the same
//! [`Host::sync`] the MCP server calls; then human output as in the seed's
//! examples, or exactly one JSON object with `--json`.

use crate::error::{Code, Error};
use crate::install::{Host, Paths};
use crate::record::{EntityResult, Status, SyncRecord};
use crate::sync::{Cancel, Progress};
use clap::{Args, Parser, Subcommand};
use serde_json::{Value, json};
use std::io::{IsTerminal, Write as _};
use std::path::PathBuf;
use std::time::Duration;

const AFTER_HELP: &str = "\
Examples:
  cross-domain-sync --source personal --target business
  cross-domain-sync --source personal --target business --entities contacts,calendar
  cross-domain-sync --source personal --target business --direction bidirectional --dry-run
  cross-domain-sync audit verify
  cross-domain-sync import contacts.vcf --domain personal
  cross-domain-sync plugins new recipes --lang js

Domains: personal, business (more when configured in cross_domain_config.json).
Entity types: contacts, calendar, tasks, documents, communications, and any installed plugin.
Directions: bidirectional | source_to_target (default) | target_to_source.

Exit status: 0 success; 2 INVALID_ARGUMENT, 3 DOMAIN_NOT_FOUND, 4 PERMISSION_DENIED,
5 ENTITY_TYPE_UNSUPPORTED, 6 DATA_FORMAT_INVALID, 7 SYNC_CONFLICT, 8 STORAGE_ERROR,
9 PLUGIN_ERROR, 10 LIMIT_EXCEEDED, 11 TIMEOUT, 12 SYNC_IN_PROGRESS.";

/// Synchronise contacts, calendar events, tasks, document metadata and
/// communication metadata between the personal and business domains, without
/// leaking what a policy keeps private and without losing data.
#[derive(Debug, Parser)]
#[command(name = "cross-domain-sync", version, after_help = AFTER_HELP)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub sync: SyncArgs,
    #[command(flatten)]
    pub common: Common,
}

/// The seed's sync flags.
#[derive(Debug, Args, Default)]
pub struct SyncArgs {
    /// Domain to sync from: personal | business (its data wins conflicts,
    /// except with target_to_source).
    #[arg(long, value_name = "DOMAIN")]
    pub source: Option<String>,
    /// Domain to sync to: personal | business; must differ from --source.
    #[arg(long, value_name = "DOMAIN")]
    pub target: Option<String>,
    /// Entity types to sync, comma-separated [default: every installed type].
    #[arg(long, value_name = "TYPES", value_delimiter = ',')]
    pub entities: Option<Vec<String>>,
    /// bidirectional | source_to_target | target_to_source [default: source_to_target].
    #[arg(long, value_name = "DIRECTION")]
    pub direction: Option<String>,
    /// Plan only: report what would change; write nothing but the audit entry.
    #[arg(long)]
    pub dry_run: bool,
    /// Do not carry deletions over to the other domain.
    #[arg(long)]
    pub no_delete: bool,
    /// Allow deleting more than half of the items both domains last agreed
    /// on, or syncing against a domain that lists no items.
    #[arg(long)]
    pub allow_mass_delete: bool,
}

/// Flags every command takes.
#[derive(Debug, Args, Clone)]
pub struct Common {
    /// The data folder.
    #[arg(long, global = true, value_name = "DIR", default_value = "data")]
    pub data_dir: PathBuf,
    /// The configuration file (built-in defaults when it does not exist).
    #[arg(
        long,
        global = true,
        value_name = "FILE",
        default_value = "cross_domain_config.json"
    )]
    pub config: PathBuf,
    /// The field-rename file (none when it does not exist).
    #[arg(
        long,
        global = true,
        value_name = "FILE",
        default_value = "entity_mappings.json"
    )]
    pub mappings: PathBuf,
    /// Where installed plugins and plugins.lock live.
    #[arg(long, global = true, value_name = "DIR", default_value = "plugins")]
    pub plugins_dir: PathBuf,
    /// The user the sync runs as [default: $CDS_USER, else the OS user].
    #[arg(long, global = true, value_name = "NAME", env = "CDS_USER")]
    pub user: Option<String>,
    /// The session id recorded in the audit trail [default: a new UUID].
    #[arg(long, global = true, value_name = "ID")]
    pub session: Option<String>,
    /// Machine output: exactly one JSON object on stdout.
    #[arg(long, global = true)]
    pub json: bool,
    /// Where compiled plugins are cached [default: the user's cache folder,
    /// $XDG_CACHE_HOME/cross-domain-sync or ~/.cache/cross-domain-sync].
    #[arg(long, global = true, value_name = "DIR", env = "CDS_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Seconds to wait for another sync's lock on the data folder.
    #[arg(long, global = true, value_name = "SECONDS", default_value_t = 10.0)]
    pub wait: f64,
    /// More log output on stderr (-v info, -vv debug).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

impl Common {
    /// `--user` or `CDS_USER`; an empty value counts as none (the OS
    /// account is then the user).
    pub fn user(&self) -> Option<String> {
        self.user.clone().filter(|u| !u.is_empty())
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the skill over MCP (JSON-RPC 2.0, one message per line on
    /// stdin/stdout) until end of input. Logs go to stderr.
    Serve,
    /// Manage entity-type plugins.
    #[command(subcommand)]
    Plugins(PluginsCmd),
    /// Check the audit trail.
    #[command(subcommand)]
    Audit(AuditCmd),
    /// Review the values that lost a conflict, and choose otherwise.
    #[command(subcommand)]
    Conflicts(ConflictsCmd),
    /// Put the items a sync changed back as they were before it, in both
    /// domains. Refuses (naming them) when a later sync changed the same
    /// items, unless --force.
    Undo {
        /// The sync's id, e.g. sync-20260112-100530.
        sync_id: String,
        /// Undo even over later changes to the same items.
        #[arg(long)]
        force: bool,
    },
    /// List or prune the backups that undo uses.
    #[command(subcommand)]
    Backups(BackupsCmd),
    /// Import a vCard (.vcf) or iCalendar (.ics) file into a domain: its
    /// cards as contacts, its events and to-dos as calendar and tasks
    /// items, every property kept. It is a sync into the domain (validated,
    /// merged against the last import of the file, audited, undoable), one
    /// way and without deletions: never an overwrite.
    Import {
        /// The .vcf or .ics file.
        file: PathBuf,
        /// The domain to import into, e.g. personal.
        #[arg(long, value_name = "DOMAIN")]
        domain: String,
        /// The category of imported items that name none (the default
        /// policies withhold `personal` and `family` from business).
        #[arg(long, value_name = "CATEGORY")]
        category: Option<String>,
        /// Plan only: report what would change; write nothing but the audit
        /// entry.
        #[arg(long)]
        dry_run: bool,
    },
    /// Export a domain's contacts as vCard, or its calendar or tasks as
    /// iCalendar: imported items come back with every property they came
    /// with, changed fields written in.
    Export {
        /// The domain to export from.
        #[arg(long, value_name = "DOMAIN")]
        domain: String,
        /// contacts, calendar or tasks.
        #[arg(long, value_name = "TYPE")]
        entities: String,
        /// vcard (contacts) or icalendar (calendar, tasks) [default: the
        /// type's].
        #[arg(long, value_enum)]
        format: Option<crate::cards::Format>,
        /// The file to write (replaced atomically).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Generate deterministic test data (benchmarks, load tests).
    #[command(subcommand)]
    Generate(GenerateCmd),
    /// Print a JSON Schema (invocation, sync-record, error, config,
    /// entity-mappings), or write them all with --write.
    Schema {
        /// The schema to print; all names are listed when omitted.
        name: Option<String>,
        /// Write every schema into this folder as NAME.schema.json (the
        /// default installation's view, as committed in schemas/).
        #[arg(long, value_name = "DIR")]
        write: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum PluginsCmd {
    /// List the plugins: entity type, versions, SHA-256 and origin.
    List,
    /// Check a plugin (loads it, calls describe, checks its schema and
    /// interface version) and install it into the plugins folder.
    Add {
        /// The plugin's .wasm component.
        file: PathBuf,
    },
    /// Write a new plugin project for an entity type, with its tests, a
    /// build script, sample items and the guest SDK, ready to build.
    New {
        /// The entity type, e.g. `recipes` (a-z, 0-9, `_`, `-`); also the
        /// data file's name.
        name: String,
        /// The language to write it in.
        #[arg(long, value_enum)]
        lang: crate::scaffold::Lang,
        /// Where to write it [default: ./NAME]; must not exist or be empty.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// Try a plugin before installing it: load and check it as `add` does,
    /// send sample items through it in every crossing between the configured
    /// domains (with the configuration's policies and renames), run every
    /// check a sync runs on its output, and print what each item became.
    /// Installs nothing.
    Test {
        /// A .wasm component, or a project folder (its build.sh runs first,
        /// then its one .wasm file is tried).
        target: PathBuf,
        /// Sample items: a data file `{"TYPE": [...]}` or an array
        /// [default: sample-items.json in the folder, or beside the file].
        #[arg(long, value_name = "FILE")]
        items: Option<PathBuf>,
        /// Do not run the folder's build.sh; try the .wasm file already there.
        #[arg(long)]
        no_build: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum GenerateCmd {
    /// Write data/{personal,business}/<type>.json for the five built-in types.
    Data {
        /// The folder to write into (its data/ is created).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Items per entity type per domain (the limit is 10,000).
        #[arg(long, default_value_t = 1000)]
        items: usize,
        /// Share of items present in both domains, 0 to 1.
        #[arg(long, default_value_t = 0.5)]
        overlap: f64,
        /// `canonical`: values as this product writes them; `varied`: as
        /// people and other programs do (mixed-case emails, phones in many
        /// forms, offsets in timestamps, other scripts, unknown nested
        /// fields, shared items edited on one side).
        #[arg(long, value_enum, default_value = "canonical")]
        shape: crate::generate::Shape,
        /// Approximate bytes of a message's body [default: about 440 in the
        /// canonical shape, 1500 in the varied one].
        #[arg(long, value_name = "BYTES")]
        body_bytes: Option<usize>,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Change a share of each domain's items in place, as users would between syncs.
    Edit {
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Share of items to change per type and domain, 0 to 1.
        #[arg(long, default_value_t = 0.01)]
        fraction: f64,
        #[arg(long, default_value_t = 2)]
        seed: u64,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConflictsCmd {
    /// The unresolved conflicts: sync, entity type, id, field, both values, which won.
    List {
        /// Include resolved ones.
        #[arg(long)]
        all: bool,
    },
    /// Apply a choice to both domains (audited).
    Resolve {
        /// The conflict's id, as `conflicts list` shows it (SYNC_ID:N).
        id: String,
        /// Which value to keep.
        #[arg(long, value_enum)]
        keep: crate::review::Keep,
    },
}

#[derive(Debug, Subcommand)]
pub enum BackupsCmd {
    /// Every sync (and resolution, undo) with its backups, oldest first.
    List,
    /// Delete all but the newest N backups; those syncs can no longer be undone.
    Prune {
        #[arg(long, value_name = "N")]
        keep: usize,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCmd {
    /// Check the hash chain; names the first entry altered, removed or inserted.
    Verify,
}

fn paths(c: &Common) -> Paths {
    Paths {
        data_dir: c.data_dir.clone(),
        config: c.config.clone(),
        mappings: c.mappings.clone(),
        plugins_dir: c.plugins_dir.clone(),
        // --cache-dir or CDS_CACHE_DIR (the tests share one).
        cache_dir: c.cache_dir.clone().filter(|d| !d.as_os_str().is_empty()),
    }
}

fn open(c: &Common) -> Result<Host, Error> {
    let wait = if c.wait.is_finite() && c.wait >= 0.0 {
        Duration::from_secs_f64(c.wait.min(3600.0))
    } else {
        return Err(Error::invalid(format!(
            "--wait must be a number of seconds ≥ 0, not {}",
            c.wait
        )));
    };
    Host::open(paths(c), wait)
}

/// Prints an error: one JSON object with `--json`, else the seed's shape.
fn report_error(json_out: bool, e: &Error) -> i32 {
    if json_out {
        let v = json!({"status": "failed", "errors": [e.to_json()]});
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else {
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "Error: {}", e.message);
        for h in &e.help {
            let _ = writeln!(err, "{h}");
        }
    }
    e.code.exit_code()
}

/// Runs the command line; returns the exit status.
///
/// Long: one arm per subcommand, each a few lines that hand over to its own
/// function; splitting the match would only scatter the table.
pub fn run(argv: Vec<std::ffi::OsString>) -> i32 {
    let json_out = argv.iter().any(|a| a == "--json");
    let cli = match Cli::try_parse_from(&argv) {
        Ok(c) => c,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                let _ = e.print();
                return 0;
            }
            if json_out && e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                // `plugins --json`: a usage error, so one JSON object.
                let err = Error::invalid(
                    "a subcommand is missing; run the command with --help to see them",
                );
                return report_error(true, &err);
            }
            if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                let _ = e.print();
                return Code::InvalidArgument.exit_code();
            }
            if json_out {
                let err = Error::invalid(e.to_string().trim().replace("\n\n", "\n"));
                return report_error(true, &err);
            }
            let _ = e.print();
            return Code::InvalidArgument.exit_code();
        }
    };
    init_logging(cli.common.verbose);
    let common = cli.common.clone();
    match cli.command {
        None => sync(&cli.sync, &common),
        Some(Command::Serve) => match open(&common) {
            Ok(host) => {
                let user = common.user().unwrap_or_else(crate::request::default_user);
                crate::mcp::serve(host, user)
            }
            Err(e) => {
                tracing::error!("cannot start the MCP server: {e}");
                e.code.exit_code()
            }
        },
        Some(Command::Plugins(cmd)) => plugins(cmd, &common),
        Some(Command::Import {
            file,
            domain,
            category,
            dry_run,
        }) => import(
            crate::exchange::ImportRequest {
                file,
                domain,
                category,
                dry_run,
            },
            &common,
        ),
        Some(Command::Export {
            domain,
            entities,
            format,
            out,
        }) => export(
            crate::exchange::ExportRequest {
                domain,
                entity: entities,
                format,
                out,
            },
            &common,
        ),
        Some(Command::Audit(AuditCmd::Verify)) => audit_verify(&common),
        Some(Command::Conflicts(cmd)) => conflicts(cmd, &common),
        Some(Command::Generate(GenerateCmd::Data {
            out,
            items,
            overlap,
            shape,
            body_bytes,
            seed,
        })) => match crate::generate::data(
            &out,
            &crate::generate::Spec {
                items,
                overlap,
                shape,
                body_bytes,
                seed,
            },
        ) {
            Ok(bytes) => {
                println!(
                    "wrote {items} items per type per domain, {:.1} MB, into {}",
                    bytes as f64 / 1e6,
                    out.join("data").display()
                );
                0
            }
            Err(e) => report_error(common.json, &Error::storage("generating into", &out, e)),
        },
        Some(Command::Generate(GenerateCmd::Edit {
            out,
            fraction,
            seed,
        })) => match crate::generate::edit(&out, fraction, seed) {
            Ok(n) => {
                println!("changed {n} items in {}", out.join("data").display());
                0
            }
            Err(e) => report_error(common.json, &Error::storage("editing", &out, e)),
        },
        Some(Command::Undo { sync_id, force }) => with_host(&common, |h, user| {
            let r = crate::review::undo(h, &sync_id, force, user)?;
            let n: usize = r["restored"]
                .as_object()
                .map(|m| {
                    m.values()
                        .filter_map(|v| v.as_array())
                        .map(|a| a.len())
                        .sum()
                })
                .unwrap_or(0);
            Ok((
                r.clone(),
                format!("Undid {sync_id}: {n} items put back as they were before it."),
            ))
        }),
        Some(Command::Backups(BackupsCmd::List)) => with_host(&common, |h, _| {
            let list = crate::review::list_backups(&h.data)?;
            let mut text = format!(
                "{:<40} {:<32} {:>6} {:>10}\n",
                "ID", "COMMITTED", "FILES", "BYTES"
            );
            for b in &list {
                text.push_str(&format!(
                    "{:<40} {:<32} {:>6} {:>10}\n",
                    b.id,
                    b.committed_at,
                    b.files.len(),
                    b.bytes
                ));
            }
            Ok((json!({"backups": list}), text.trim_end().to_string()))
        }),
        Some(Command::Backups(BackupsCmd::Prune { keep })) => with_host(&common, |h, user| {
            let pruned = crate::review::prune_backups(h, keep, user)?;
            Ok((
                json!({"pruned": pruned}),
                format!("Pruned {} backups; kept the newest {keep}.", pruned.len()),
            ))
        }),
        Some(Command::Schema { name, write }) => schema(name, write, &common),
    }
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("CDS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .try_init();
}

/// The invocation's JSON form from the flags.
pub fn invocation_json(a: &SyncArgs, c: &Common) -> Value {
    let mut m = serde_json::Map::new();
    if let Some(s) = &a.source {
        m.insert("source".into(), json!(s));
    }
    if let Some(t) = &a.target {
        m.insert("target".into(), json!(t));
    }
    if let Some(e) = &a.entities {
        m.insert("entities".into(), json!(e));
    }
    if let Some(d) = &a.direction {
        m.insert("direction".into(), json!(d));
    }
    m.insert("dryRun".into(), json!(a.dry_run));
    m.insert("noDelete".into(), json!(a.no_delete));
    m.insert("allowMassDelete".into(), json!(a.allow_mass_delete));
    if let Some(u) = &c.user() {
        m.insert("user".into(), json!(u));
    }
    if let Some(s) = &c.session {
        m.insert("session".into(), json!(s));
    }
    Value::Object(m)
}

/// Human progress: a line per entity type on stdout, and a bar on stderr
/// when it is a terminal.
struct HumanProgress {
    bar: Option<indicatif::ProgressBar>,
    /// Printed once the request is valid and the first type starts.
    header: std::sync::Mutex<Option<String>>,
}

impl Progress for HumanProgress {
    fn entity_started(&self, entity: &str, _index: usize, total: usize) {
        if let Some(h) = self.header.lock().unwrap_or_else(|e| e.into_inner()).take() {
            match &self.bar {
                Some(bar) => bar.println(h),
                None => println!("{h}"),
            }
        }
        let line = format!("Syncing {entity} entities...");
        match &self.bar {
            Some(bar) => {
                bar.set_length(total as u64);
                bar.println(line);
            }
            None => println!("{line}"),
        }
    }
    fn entity_done(&self, _entity: &str, _r: &EntityResult) {
        if let Some(bar) = &self.bar {
            bar.inc(1);
        }
    }
}

fn sync(a: &SyncArgs, c: &Common) -> i32 {
    if a.source.is_none() && a.target.is_none() && a.entities.is_none() && a.direction.is_none() {
        if c.json {
            let err = Error::invalid(
                "nothing to do: --source and --target name the domains to sync; run \
                 `cross-domain-sync --help` for every option",
            )
            .with("paths", vec!["$.source", "$.target"]);
            return report_error(true, &err);
        }
        eprintln!(
            "cross-domain-sync: nothing to do; --source and --target name the domains to sync.\n"
        );
        eprintln!(
            "Usage: cross-domain-sync --source DOMAIN --target DOMAIN [--entities TYPES] [--direction DIRECTION]"
        );
        eprintln!("Run `cross-domain-sync --help` for every option.");
        return Code::InvalidArgument.exit_code();
    }
    let host = match open(c) {
        Ok(h) => h,
        Err(e) => return report_error(c.json, &e),
    };
    let raw = invocation_json(a, c);
    let user = c.user().unwrap_or_else(crate::request::default_user);
    let (s, t) = (
        a.source.as_deref().unwrap_or("?"),
        a.target.as_deref().unwrap_or("?"),
    );
    let header = match a.direction.as_deref() {
        Some(d) if d != "source_to_target" => format!("Synchronizing data from {s} to {t} ({d})"),
        _ => format!("Synchronizing data from {s} to {t}"),
    };
    let bar = (!c.json && std::io::stderr().is_terminal()).then(|| {
        let b = indicatif::ProgressBar::new(0);
        b.set_style(
            indicatif::ProgressStyle::with_template("{spinner} {pos}/{len} entity types {elapsed}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b.enable_steady_tick(Duration::from_millis(100));
        b
    });
    let progress = HumanProgress {
        bar,
        header: std::sync::Mutex::new(Some(header)),
    };
    let record = if c.json {
        host.sync(&raw, &user, &crate::sync::Quiet, &Cancel::default())
    } else {
        host.sync(&raw, &user, &progress, &Cancel::default())
    };
    if let Some(bar) = &progress.bar {
        bar.finish_and_clear();
    }
    if c.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&record).unwrap_or_default()
        );
        return exit_status(&record);
    }
    print_record(&record)
}

/// `import`: the file staged, then the sync into the domain, printed as a
/// sync is.
fn import(req: crate::exchange::ImportRequest, c: &Common) -> i32 {
    let mut host = match open(c) {
        Ok(h) => h,
        Err(e) => return report_error(c.json, &e),
    };
    let user = c.user().unwrap_or_else(crate::request::default_user);
    let (summary, record) = match crate::exchange::import(
        &mut host,
        &req,
        &user,
        &crate::sync::Quiet,
        &Cancel::default(),
    ) {
        Ok(r) => r,
        Err(e) => return report_error(c.json, &e),
    };
    if c.json {
        let mut v = serde_json::to_value(&record).unwrap_or(Value::Null);
        v["import"] = json!({
            "file": req.file.display().to_string(),
            "format": if summary.format == crate::cards::Format::Vcard { "vcard" } else { "icalendar" },
            "items": summary.counts.iter().map(|(e, n)| (e.clone(), json!(n))).collect::<serde_json::Map<_, _>>(),
            "unmapped": summary.unmapped,
            "stagedAs": summary.staged_as,
        });
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        return exit_status(&record);
    }
    let counts: Vec<String> = summary
        .counts
        .iter()
        .map(|(e, n)| format!("{n} {e}"))
        .collect();
    println!(
        "Importing {} ({}) into {}: {}",
        req.file.display(),
        if summary.format == crate::cards::Format::Vcard {
            "vCard"
        } else {
            "iCalendar"
        },
        req.domain,
        counts.join(", ")
    );
    if !summary.unmapped.is_empty() {
        println!(
            "Not imported (no entity type carries them): {}",
            summary.unmapped.join(", ")
        );
    }
    print_record(&record)
}

/// `export`: one file written, and how many items it holds.
fn export(req: crate::exchange::ExportRequest, c: &Common) -> i32 {
    let host = match open(c) {
        Ok(h) => h,
        Err(e) => return report_error(c.json, &e),
    };
    let user = c.user().unwrap_or_else(crate::request::default_user);
    match crate::exchange::export(&host, &req, &user) {
        Ok(n) => {
            if c.json {
                let v = json!({"status": "success", "domain": req.domain, "entityType": req.entity,
                               "file": req.out.display().to_string(), "items": n});
                println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            } else {
                println!(
                    "Exported {n} {} from {} to {}",
                    req.entity,
                    req.domain,
                    req.out.display()
                );
            }
            0
        }
        Err(e) => report_error(c.json, &e),
    }
}

/// A sync's record as a person reads it: the seed's report, or its error
/// in the seed's error shape; the exit status.
fn print_record(record: &SyncRecord) -> i32 {
    if record.status == Status::Failed {
        let e = &record.errors[0];
        let err = Error::from(crate::error::ErrorData {
            code: e.code,
            message: e.message.clone(),
            help: e.help.clone(),
            details: e.details.clone(),
        });
        return report_error(false, &err);
    }
    print_human(record);
    0
}

fn exit_status(r: &SyncRecord) -> i32 {
    match r.status {
        Status::Failed => r.errors.first().map_or(1, |e| e.code.exit_code()),
        _ => 0,
    }
}

fn print_human(r: &SyncRecord) {
    let mut out = std::io::stdout().lock();
    if r.entities.len() == 1 {
        let e = &r.entities[0];
        let x = r.results.get(e).copied().unwrap_or_default();
        let _ = writeln!(out, "Successfully synced {e} entities\n");
        let _ = writeln!(out, "Results:");
        let _ = writeln!(out, "- Source Count: {} {e}", x.source_count);
        let _ = writeln!(out, "- Target Count: {} {e}", x.target_count);
        let _ = writeln!(out, "- Merged Count: {} {e}", x.merged_count);
        let _ = writeln!(out, "- Conflicts Resolved: {}", x.conflicts);
        let _ = writeln!(
            out,
            "- Added: {}, Updated: {}, Deleted: {}, Unchanged: {}",
            x.added, x.updated, x.deleted, x.unchanged
        );
        let _ = writeln!(
            out,
            "- Withheld by policy: {} items, {} fields redacted",
            x.withheld, x.redacted_fields
        );
    } else {
        let t = r.total();
        let _ = writeln!(out, "\nResults:");
        let _ = writeln!(out, "Total Entities Synced: {}", r.results.len());
        let _ = writeln!(out, "Total Items Synced: {}", t.source_count);
        let _ = writeln!(out, "Total Errors: {}", r.errors.len());
        let _ = writeln!(out, "\nSync Summary:");
        for e in &r.entities {
            let x = r.results.get(e).copied().unwrap_or_default();
            let _ = writeln!(
                out,
                "- {e}: {} → {} items (added {}, updated {}, deleted {}, conflicts {}, withheld {})",
                x.source_count,
                x.merged_count,
                x.added,
                x.updated,
                x.deleted,
                x.conflicts,
                x.withheld
            );
        }
    }
    let _ = writeln!(out);
    if r.status == Status::DryRun {
        let _ = writeln!(
            out,
            "Dry run: nothing was written (the plan is in --json output)"
        );
    } else {
        let _ = writeln!(out, "Sync completed successfully");
    }
    let _ = writeln!(out, "Sync ID: {}", r.sync_id);
    let _ = writeln!(
        out,
        "Duration: {:.2} seconds",
        r.duration_ms as f64 / 1000.0
    );
}

/// `plugins list|add|...`.
///
/// Long: one arm per subcommand, each printing its result for a person and
/// for `--json`; the arms share nothing but the host.
fn plugins(cmd: PluginsCmd, c: &Common) -> i32 {
    if let PluginsCmd::New { name, lang, dir } = &cmd {
        return plugins_new(name, *lang, dir.as_deref(), c.json);
    }
    let mut host = match open(c) {
        Ok(h) => h,
        Err(e) => return report_error(c.json, &e),
    };
    match cmd {
        PluginsCmd::List => {
            let list = host.registry.list();
            if c.json {
                let v: Vec<Value> = list
                    .iter()
                    .map(|(name, r)| match r {
                        Ok(info) => serde_json::to_value(info).unwrap_or(Value::Null),
                        Err(e) => json!({"entityType": name, "error": e.to_json()}),
                    })
                    .collect();
                println!(
                    "{}",
                    serde_json::to_string_pretty(&json!({"plugins": v})).unwrap_or_default()
                );
            } else {
                println!(
                    "{:<16} {:<9} {:<10} {:<64} ORIGIN",
                    "ENTITY TYPE", "VERSION", "INTERFACE", "SHA-256"
                );
                for (name, r) in &list {
                    match r {
                        Ok(i) => println!(
                            "{:<16} {:<9} {:<10} {:<64} {}",
                            i.entity_type,
                            i.plugin_version,
                            i.interface_version,
                            i.sha256,
                            match &i.origin {
                                crate::plugin::Origin::BuiltIn => "built-in".to_string(),
                                crate::plugin::Origin::Installed { file } =>
                                    format!("{}", c.plugins_dir.join(file).display()),
                            }
                        ),
                        Err(e) => println!("{name:<16} REFUSED: {}", e.message),
                    }
                }
                println!(
                    "\nThis host accepts plugin interface {}.",
                    crate::plugin::runtime::accepted_list()
                );
            }
            if list.iter().any(|(_, r)| r.is_err()) {
                Code::PluginError.exit_code()
            } else {
                0
            }
        }
        PluginsCmd::New { .. } => unreachable!("handled before the host is opened"),
        PluginsCmd::Test {
            target,
            items,
            no_build,
        } => plugins_test(&host, target, items, !no_build, c.json),
        PluginsCmd::Add { file } => {
            let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            let user = c.user().unwrap_or_else(crate::request::default_user);
            let result = host.registry.add(&file, &now);
            let (errors, status) = crate::audit::ErrorRef::outcome(&result);
            let entry = crate::audit::Entry::new(
                now.clone(),
                user,
                crate::audit::Action::PluginInstall {
                    file: file.display().to_string(),
                    plugin: result.as_ref().ok().map(|i| crate::audit::PluginRef {
                        entity_type: i.entity_type.clone(),
                        sha256: i.sha256.clone(),
                        plugin_version: i.plugin_version.clone(),
                    }),
                    errors,
                },
                status,
            );
            if host.data.root.is_dir()
                && let Err(e) = host.audit(entry)
            {
                return report_error(c.json, &e);
            }
            match result {
                Ok(info) => {
                    if c.json {
                        println!(
                            "{}",
                            serde_json::to_string_pretty(&info).unwrap_or_default()
                        );
                    } else {
                        println!(
                            "Installed plugin `{}` {} (interface {}) into {}\nSHA-256 {} recorded in {}",
                            info.entity_type,
                            info.plugin_version,
                            info.interface_version,
                            c.plugins_dir.display(),
                            info.sha256,
                            c.plugins_dir.join("plugins.lock").display()
                        );
                    }
                    0
                }
                Err(e) => report_error(c.json, &e),
            }
        }
    }
}

/// Runs an admin command against an opened host; prints its JSON or text.
fn with_host(c: &Common, f: impl FnOnce(&Host, &str) -> Result<(Value, String), Error>) -> i32 {
    let user = c.user().unwrap_or_else(crate::request::default_user);
    match open(c).and_then(|h| f(&h, &user)) {
        Ok((v, text)) => {
            if c.json {
                println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            } else {
                println!("{text}");
            }
            0
        }
        Err(e) => report_error(c.json, &e),
    }
}

fn conflicts(cmd: ConflictsCmd, c: &Common) -> i32 {
    match cmd {
        ConflictsCmd::List { all } => with_host(c, |h, user| {
            let rows = crate::review::visible_conflicts(h, user, all)?;
            let show = |v: &Value| match v {
                Value::Null => "(absent)".to_string(),
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let mut text = String::new();
            let none = Value::Null;
            for r in &rows {
                let field = r
                    .field
                    .as_deref()
                    .unwrap_or("(whole item: changed vs deleted)");
                text.push_str(&format!(
                    "{}  {} `{}` {}\n    {}: {}\n    {}: {}\n    won: {}{}\n",
                    r.id,
                    r.entity,
                    r.item_id,
                    field,
                    r.source_domain,
                    show(r.source_value.as_ref().unwrap_or(&none)),
                    r.target_domain,
                    show(r.target_value.as_ref().unwrap_or(&none)),
                    match r.winner {
                        crate::merge::Side::Source => "source",
                        crate::merge::Side::Target => "target",
                    },
                    match &r.resolved {
                        Some(res) => format!(
                            " (resolved: kept {:?} by `{}` at {})",
                            res.keep, res.by, res.at
                        ),
                        None => String::new(),
                    },
                ));
            }
            if rows.is_empty() {
                text.push_str("No unresolved conflicts.");
            } else {
                text.push_str("Resolve one with `cross-domain-sync conflicts resolve ID --keep source|target|base`.");
            }
            Ok((json!({"conflicts": rows}), text))
        }),
        ConflictsCmd::Resolve { id, keep } => with_host(c, |h, user| {
            let r = crate::review::resolve(h, &id, keep, user)?;
            Ok((
                r.clone(),
                format!(
                    "Resolved {id}: kept the {} value in both domains.",
                    match keep {
                        crate::review::Keep::Source => "source",
                        crate::review::Keep::Target => "target",
                        crate::review::Keep::Base => "base",
                    }
                ),
            ))
        }),
    }
}

/// `plugins new`: writes the project and says what to do next.
fn plugins_new(
    name: &str,
    lang: crate::scaffold::Lang,
    dir: Option<&std::path::Path>,
    json_out: bool,
) -> i32 {
    let dir = dir.map_or_else(|| PathBuf::from(name), PathBuf::from);
    match crate::scaffold::new_project(name, lang, &dir) {
        Ok(files) => {
            if json_out {
                let files: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
                let v =
                    json!({"entityType": name, "dir": dir.display().to_string(), "files": files});
                println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            } else {
                println!(
                    "Wrote a {} plugin project for `{name}` into {} ({} files).\n{}",
                    lang.name(),
                    dir.display(),
                    files.len(),
                    crate::scaffold::next_steps(name, lang, &dir)
                );
            }
            0
        }
        Err(e) => report_error(json_out, &e),
    }
}

/// `plugins test`: the trial, printed; the build's output goes to stderr.
fn plugins_test(
    host: &Host,
    target: PathBuf,
    items: Option<PathBuf>,
    build: bool,
    json_out: bool,
) -> i32 {
    let req = crate::trial::TrialRequest {
        target,
        items,
        build,
    };
    match crate::trial::run(host, &req, &mut std::io::stderr()) {
        Ok(t) => {
            if json_out {
                println!("{}", serde_json::to_string_pretty(&t).unwrap_or_default());
            } else {
                print!("{}", crate::trial::render(&t));
            }
            0
        }
        Err(e) => report_error(json_out, &e),
    }
}

fn audit_verify(c: &Common) -> i32 {
    // Like every invocation, finish an interrupted sync first (it audits).
    if c.data_dir.join(".sync").is_dir() {
        let recovered = open(c).and_then(|host| {
            let _lock = host
                .data
                .lock(Duration::from_secs_f64(c.wait.clamp(0.0, 3600.0)))?;
            host.recover()
        });
        if let Err(e) = recovered {
            return report_error(c.json, &e);
        }
    }
    let dir = crate::store::DataDir::new(&c.data_dir);
    match crate::audit::verify(&dir) {
        Ok(v) => {
            if c.json {
                println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            } else if v.ok {
                println!(
                    "Audit trail OK: {} entries verified ({})",
                    v.entries,
                    dir.audit_path().display()
                );
            } else {
                println!(
                    "Audit trail BROKEN at line {}: {}\n{} entries before it verified.",
                    v.first_bad_line.unwrap_or(0),
                    v.problem.as_deref().unwrap_or("?"),
                    v.entries
                );
            }
            if v.ok { 0 } else { 1 }
        }
        Err(e) => report_error(c.json, &e),
    }
}

fn schema(name: Option<String>, write: Option<PathBuf>, c: &Common) -> i32 {
    let defaults = crate::config::Config::default().domain_names();
    let builtins: Vec<String> = crate::plugin::builtin_names()
        .into_iter()
        .map(String::from)
        .collect();
    if let Some(dir) = write {
        for n in crate::schema::NAMES {
            let v = crate::schema::named(n, &defaults, &builtins).unwrap_or(Value::Null);
            let path = dir.join(format!("{n}.schema.json"));
            if let Err(e) = crate::store::atomic_write(&path, &crate::store::to_pretty(&v)) {
                return report_error(c.json, &e);
            }
            println!("wrote {}", path.display());
        }
        return 0;
    }
    let Some(name) = name else {
        println!("Schemas: {}", crate::schema::NAMES.join(", "));
        println!("Print one with `cross-domain-sync schema NAME`.");
        return 0;
    };
    // The invocation schema reflects this installation's domains and plugins.
    let (domains, entities) = match open(c) {
        Ok(h) => (h.config.domain_names(), h.entity_types()),
        Err(_) => (defaults, builtins),
    };
    match crate::schema::named(&name, &domains, &entities) {
        Some(v) => {
            println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            0
        }
        None => report_error(
            c.json,
            &Error::invalid(format!("no schema named `{name}`"))
                .with_help(format!("Schemas: {}", crate::schema::NAMES.join(", "))),
        ),
    }
}
