//! `cross-domain-sync generate`: deterministic test data at any size up to the
//! contract's limits, for benchmarks and load tests.
//!
//! `generate data` writes `<out>/data/{personal,business}/<type>.json` for the
//! five built-in types: `items` per type per domain (about 1 KB each, so the
//! limits, 10,000 per type per domain, come to about 100 MB), a share
//! `overlap` of them present in both domains with the same content (as after a
//! sync), and items the default policies withhold or redact. `generate edit`
//! then changes a share of each domain's items in place (as users would
//! between two syncs). The same seed gives the same bytes.
//!
//! Two shapes (`--shape`): `canonical`, values as this product writes them
//! (lower-case emails, `+1-555-0123` phones, UTC timestamps, ASCII text, items
//! shared by both domains identical), and `varied`, values as people and other
//! programs write them: emails in mixed case with stray spaces, phones in five
//! national and international forms, timestamps with offsets and fractions,
//! names and text in other scripts and with emoji, unknown vendor fields with
//! nested objects and arrays, and a quarter of the shared ids edited on one
//! side since. `--body-bytes` sets the size of a message's body.

use serde_json::{Map, Value, json};
use std::path::Path;

/// A tiny deterministic generator (splitmix64). Written here rather than
/// taken from `rand` because its output must never change between crate
/// versions: benchmark data is compared across runs and machines.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
    pub fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.below(xs.len() as u64) as usize]
    }
}

const WORDS: &[&str] = &[
    "quarterly",
    "review",
    "budget",
    "launch",
    "customer",
    "design",
    "roadmap",
    "hiring",
    "travel",
    "invoice",
    "contract",
    "meeting",
    "notes",
    "draft",
    "family",
    "dinner",
    "school",
    "doctor",
    "holiday",
    "garden",
    "project",
    "release",
    "security",
    "audit",
    "migration",
    "dashboard",
];
const FIRST: &[&str] = &[
    "Ada", "Alan", "Grace", "Linus", "Barbara", "Ken", "Margaret", "Donald", "Radia", "Tim",
    "Hedy", "Guido",
];
const LAST: &[&str] = &[
    "Lovelace", "Turing", "Hopper", "Torvalds", "Liskov", "Thompson", "Hamilton", "Knuth",
    "Perlman", "Lamarr",
];

fn sentence(r: &mut Rng, words: usize) -> String {
    (0..words)
        .map(|_| r.pick(WORDS))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The data's shape: see the module doc.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Shape {
    Canonical,
    Varied,
}

/// What `data` writes.
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    /// Items per type per domain.
    pub items: usize,
    /// Share of ids present in both domains, 0 to 1.
    pub overlap: f64,
    pub shape: Shape,
    /// Approximate bytes of a communication's body; `None`: about 440
    /// (60 words), the canonical shape's.
    pub body_bytes: Option<usize>,
    pub seed: u64,
}

impl Spec {
    /// The canonical shape at `items` per type per domain.
    pub fn canonical(items: usize, overlap: f64, seed: u64) -> Spec {
        Spec {
            items,
            overlap,
            shape: Shape::Canonical,
            body_bytes: None,
            seed,
        }
    }
}

/// Words of other scripts and with accents, for the varied shape.
const WIDE_WORDS: &[&str] = &[
    "réunion",
    "Überblick",
    "café",
    "naïve",
    "Zürich",
    "São Paulo",
    "日本語",
    "会議",
    "报告",
    "Привет",
    "σύσκεψη",
    "🎉",
    "✅",
    "Ωmega",
    "façade",
    "piñata",
    "Kraków",
    "Ærø",
];
const WIDE_FIRST: &[&str] = &[
    "Zoë", "José", "Åsa", "Łukasz", "Søren", "Ngọc", "明", "Анна",
];
const WIDE_LAST: &[&str] = &[
    "Ångström",
    "Müller",
    "Nuñez",
    "Dvořák",
    "李",
    "Smirnova",
    "Ó Briain",
];

/// Between `min` and `min + spread - 1` words.
fn varied_words(r: &mut Rng, min: usize, spread: u64) -> String {
    let n = min + r.below(spread) as usize;
    varied_sentence(r, n)
}

fn varied_sentence(r: &mut Rng, words: usize) -> String {
    (0..words)
        .map(|_| {
            if r.below(6) == 0 {
                r.pick(WIDE_WORDS)
            } else {
                r.pick(WORDS)
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// About `bytes` bytes of text.
fn text_of(r: &mut Rng, bytes: usize, varied: bool) -> String {
    let mut s = String::with_capacity(bytes + 16);
    while s.len() < bytes {
        if !s.is_empty() {
            s.push(' ');
        }
        s.push_str(if varied && r.below(6) == 0 {
            r.pick(WIDE_WORDS)
        } else {
            r.pick(WORDS)
        });
    }
    s
}

/// A phone number in one of the forms people type.
fn varied_phone(r: &mut Rng) -> String {
    let (a, b, c) = (r.below(1000), r.below(1000), r.below(10_000));
    match r.below(5) {
        0 => format!("+1-555-{c:04}"),
        1 => format!("(555) {b:03}-{c:04}"),
        2 => format!("+1 555 {b:03} {c:04}"),
        3 => format!("555.{b:03}.{c:04}"),
        _ => format!("+44 20 {a:04} {c:04}"),
    }
}

/// An email in mixed case, sometimes with stray spaces.
fn varied_email(r: &mut Rng, first: &str, last: &str) -> String {
    let local = format!("{first}.{last}");
    let local: String = local
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '.')
        .collect();
    let local = if local.len() < 3 {
        format!("user{}", r.below(10_000))
    } else {
        local
    };
    match r.below(4) {
        0 => format!("{local}@Example.com"),
        1 => format!(" {}@EXAMPLE.COM ", local.to_uppercase()),
        2 => format!("{}@example.com", local.to_lowercase()),
        _ => format!("{local}@Mail.Example.ORG"),
    }
}

/// An RFC 3339 timestamp with an offset or a fraction of a second.
fn varied_ts(r: &mut Rng) -> String {
    let (mo, d, h, mi, s) = (
        1 + r.below(12),
        1 + r.below(28),
        r.below(24),
        r.below(60),
        r.below(60),
    );
    match r.below(4) {
        0 => format!("2026-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z"),
        1 => format!("2026-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}+02:00"),
        2 => format!(
            "2026-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{:03}Z",
            r.below(1000)
        ),
        _ => format!("2026-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}-05:30"),
    }
}

/// Fields no plugin knows, as another program would leave them: nested
/// objects and arrays, numbers and booleans.
fn vendor_fields(r: &mut Rng, out: &mut Map<String, Value>) {
    out.insert(
        "x-crm-id".into(),
        json!(format!("crm:{:08x}", r.next_u64() as u32)),
    );
    if r.below(4) == 0 {
        let history: Vec<Value> = (0..1 + r.below(3))
            .map(|_| json!({"at": varied_ts(r), "by": r.pick(FIRST), "fields": [r.pick(WORDS), r.pick(WORDS)]}))
            .collect();
        out.insert(
            "x-vendor".into(),
            json!({
                "source": {"app": r.pick(&["Outlook", "Thunderbird", "iOS", "Android"]), "version": format!("{}.{}", r.below(20), r.below(10))},
                "history": history,
                "flags": {"starred": r.below(2) == 0, "score": r.below(100) as f64 / 7.0},
            }),
        );
    }
}

fn ts(r: &mut Rng) -> String {
    format!(
        "2026-{:02}-{:02}T{:02}:{:02}:00Z",
        1 + r.below(12),
        1 + r.below(28),
        r.below(24),
        r.below(60)
    )
}

fn category(r: &mut Rng, domain: &str) -> &'static str {
    if domain == "business" {
        return "business";
    }
    // About 40% of personal items are withheld from business by default.
    ["personal", "family", "business", "business", "business"][r.below(5) as usize]
}

/// One item of `entity` with id `id`, as `domain` would hold it, in the
/// canonical shape.
pub fn item(r: &mut Rng, entity: &str, id: &str, domain: &str) -> Value {
    let (first, last) = (r.pick(FIRST), r.pick(LAST));
    let email = format!(
        "{}.{}@example.com",
        first.to_lowercase(),
        last.to_lowercase()
    );
    let mut v = match entity {
        "contacts" => json!({
            "name": format!("{first} {last}"), "email": email,
            "phone": format!("+1-555-{:04}", r.below(10_000)),
            "company": r.pick(&["Acme Corp", "Globex", "Initech", "Hooli"]), "title": "Engineer",
            "address": format!("{} {} Street, Springfield", r.below(999), r.pick(WORDS)),
            "birthday": format!("19{:02}-{:02}-{:02}", 50 + r.below(50), 1 + r.below(12), 1 + r.below(28)),
            "notes": sentence(r, 60), "tags": [r.pick(WORDS), r.pick(WORDS)],
        }),
        "calendar" => {
            let day = 1 + r.below(28);
            let hour = 8 + r.below(9);
            json!({
                "title": sentence(r, 3),
                "start": format!("2026-03-{day:02}T{hour:02}:00:00Z"),
                "end": format!("2026-03-{day:02}T{:02}:30:00Z", hour),
                "allDay": false, "location": sentence(r, 2),
                "attendees": [email, format!("{}@example.com", r.pick(WORDS))],
                "description": sentence(r, 70),
                "visibility": r.pick(&["public", "public", "private", "confidential"]),
            })
        }
        "tasks" => json!({
            "title": sentence(r, 4), "status": r.pick(&["todo", "in_progress", "done", "cancelled"]),
            "due": ts(r), "priority": r.pick(&["low", "normal", "high"]),
            "project": r.pick(WORDS), "notes": sentence(r, 70),
        }),
        "documents" => json!({
            "title": sentence(r, 4), "uri": format!("https://drive.example.com/d/{id}/{}", r.pick(WORDS)),
            "mimeType": "application/pdf", "sizeBytes": r.below(10_000_000), "owner": email,
            "classification": r.pick(&["public", "internal", "internal", "confidential", "restricted"]),
            "tags": (0..8).map(|_| r.pick(WORDS)).collect::<Vec<_>>(),
            "summary": sentence(r, 60),
        }),
        _ => json!({
            "channel": r.pick(&["email", "sms", "chat", "call"]), "timestamp": ts(r),
            "from": email, "to": [format!("{}@example.com", r.pick(WORDS))],
            "subject": sentence(r, 5), "snippet": sentence(r, 12), "body": sentence(r, 60),
            "threadId": format!("t-{}", r.below(5000)),
            "attachments": [{"name": format!("{}.pdf", r.pick(WORDS)), "sizeBytes": r.below(1 << 20)}],
        }),
    };
    let mut out = Map::new();
    out.insert("id".into(), json!(id));
    out.insert("lastModified".into(), json!(ts(r)));
    out.insert("category".into(), json!(category(r, domain)));
    // Each arm above is an object literal.
    if let Value::Object(m) = &mut v {
        out.append(m);
    }
    Value::Object(out)
}

/// One item of the varied shape (see the module doc).
fn varied_item(r: &mut Rng, entity: &str, id: &str, domain: &str, body: usize) -> Value {
    let (first, last) = if r.below(3) == 0 {
        (r.pick(WIDE_FIRST), r.pick(WIDE_LAST))
    } else {
        (r.pick(FIRST), r.pick(LAST))
    };
    let email = varied_email(r, first, last);
    let mut v = match entity {
        "contacts" => json!({
            "name": format!("{first} {last}"), "email": email, "phone": varied_phone(r),
            "company": r.pick(&["Acme Corp", "Globex GmbH", "Initech", "Hooli", "Société Générale"]),
            "title": r.pick(&["Engineer", "Directrice", "CTO", "Berater"]),
            "address": format!("{} {} Street, {}", r.below(999), r.pick(WORDS), r.pick(&["Springfield", "Zürich", "東京", "Kraków"])),
            "birthday": format!("19{:02}-{:02}-{:02}", 50 + r.below(50), 1 + r.below(12), 1 + r.below(28)),
            "notes": varied_words(r, 3, 12),
            "tags": (0..r.below(5)).map(|_| r.pick(WORDS)).collect::<Vec<_>>(),
        }),
        "calendar" => {
            let start = varied_ts(r);
            json!({
                "title": varied_sentence(r, 3), "start": start.clone(), "end": start,
                "allDay": r.below(10) == 0, "location": varied_sentence(r, 2),
                "attendees": [email, format!("{}@Example.com", r.pick(WORDS))],
                "description": varied_words(r, 3, 15),
                "visibility": r.pick(&["public", "public", "private", "confidential"]),
            })
        }
        "tasks" => json!({
            "title": varied_sentence(r, 4), "status": r.pick(&["todo", "in_progress", "done", "cancelled"]),
            "due": varied_ts(r), "priority": r.pick(&["low", "normal", "high"]),
            "project": r.pick(WORDS), "notes": varied_words(r, 3, 15),
        }),
        "documents" => json!({
            "title": varied_sentence(r, 4), "uri": format!("https://drive.example.com/d/{id}/{}", r.pick(WORDS)),
            "mimeType": r.pick(&["application/pdf", "text/plain; charset=utf-8", "image/png"]),
            "sizeBytes": r.below(10_000_000), "owner": email,
            "classification": r.pick(&["public", "internal", "internal", "confidential", "restricted"]),
            "tags": (0..r.below(10)).map(|_| r.pick(WORDS)).collect::<Vec<_>>(),
            "summary": varied_words(r, 3, 12),
        }),
        _ => {
            let (to_first, to_last) = (r.pick(FIRST), r.pick(LAST));
            let recipient = varied_email(r, to_first, to_last);
            let body_len = body * 3 / 4 + r.below(body as u64 / 2 + 1) as usize;
            json!({
            "channel": r.pick(&["email", "sms", "chat", "call"]), "timestamp": varied_ts(r),
            "from": email, "to": [recipient, varied_phone(r)],
            "subject": varied_sentence(r, 5), "snippet": varied_sentence(r, 6),
            "body": text_of(r, body_len, true),
            "threadId": format!("t-{}", r.below(5000)),
            "attachments": (0..r.below(2)).map(|_| json!({"name": format!("{}.pdf", r.pick(WIDE_WORDS)), "sizeBytes": r.below(1 << 20)})).collect::<Vec<_>>(),
            })
        }
    };
    let mut out = Map::new();
    out.insert("id".into(), json!(id));
    out.insert("lastModified".into(), json!(varied_ts(r)));
    out.insert("category".into(), json!(category(r, domain)));
    if let Value::Object(m) = &mut v {
        out.append(m);
    }
    vendor_fields(r, &mut out);
    Value::Object(out)
}

pub const ENTITIES: [&str; 5] = [
    "contacts",
    "calendar",
    "tasks",
    "documents",
    "communications",
];

fn write(path: &Path, entity: &str, items: Vec<Value>) -> std::io::Result<u64> {
    let mut bytes =
        serde_json::to_vec_pretty(&json!({ entity: items })).map_err(std::io::Error::other)?;
    bytes.push(b'\n');
    std::fs::create_dir_all(path.parent().unwrap_or(Path::new(".")))?;
    std::fs::write(path, &bytes)?;
    Ok(bytes.len() as u64)
}

/// Writes the data folder; returns the bytes written.
pub fn data(out: &Path, spec: &Spec) -> std::io::Result<u64> {
    let mut total = 0;
    let items = spec.items;
    for (k, entity) in ENTITIES.iter().enumerate() {
        let mut r = Rng::new(spec.seed.wrapping_mul(31).wrapping_add(k as u64));
        let shared = ((items as f64) * spec.overlap.clamp(0.0, 1.0)) as usize;
        let body = spec.body_bytes;
        let make = |r: &mut Rng, id: &str, domain: &str| match spec.shape {
            Shape::Canonical if body.is_none() => item(r, entity, id, domain),
            Shape::Canonical => {
                let mut v = item(r, entity, id, domain);
                if let Some(b) = body
                    && v.get("body").is_some()
                {
                    v["body"] = json!(text_of(r, b, false));
                }
                v
            }
            Shape::Varied => varied_item(r, entity, id, domain, body.unwrap_or(1500)),
        };
        let mut personal = Vec::with_capacity(items);
        let mut business = Vec::with_capacity(items);
        for i in 0..shared {
            // Shared items are business ones, identical on both sides (as
            // after a sync); in the varied shape a quarter were edited on
            // one side since.
            let it = make(&mut r, &format!("{entity}-s{i:05}"), "business");
            let mut other = it.clone();
            if spec.shape == Shape::Varied && r.below(4) == 0 {
                let field = if *entity == "communications" {
                    "subject"
                } else {
                    "title"
                };
                other[field] = json!(varied_sentence(&mut r, 3));
                other["lastModified"] = json!(varied_ts(&mut r));
            }
            personal.push(it);
            business.push(other);
        }
        for i in shared..items {
            personal.push(make(&mut r, &format!("{entity}-p{i:05}"), "personal"));
            business.push(make(&mut r, &format!("{entity}-b{i:05}"), "business"));
        }
        total += write(
            &out.join(format!("data/personal/{entity}.json")),
            entity,
            personal,
        )?;
        total += write(
            &out.join(format!("data/business/{entity}.json")),
            entity,
            business,
        )?;
    }
    Ok(total)
}

/// Changes a share `fraction` of each domain's items in place (a field edit
/// and a later `lastModified`); returns how many items changed.
pub fn edit(out: &Path, fraction: f64, seed: u64) -> std::io::Result<usize> {
    let mut changed = 0;
    for (k, entity) in ENTITIES.iter().enumerate() {
        for (d, domain) in ["personal", "business"].iter().enumerate() {
            let path = out.join(format!("data/{domain}/{entity}.json"));
            let Ok(bytes) = std::fs::read(&path) else {
                continue;
            };
            let mut v: Value = serde_json::from_slice(&bytes).map_err(std::io::Error::other)?;
            let mut r = Rng::new(seed ^ ((k as u64) << 8) ^ (d as u64 + 1) << 20);
            if let Some(items) = v[*entity].as_array_mut() {
                let n = ((items.len() as f64) * fraction).ceil() as usize;
                for _ in 0..n.min(items.len()) {
                    let i = r.below(items.len() as u64) as usize;
                    let field = match *entity {
                        "contacts" => "title",
                        "calendar" => "location",
                        "tasks" => "project",
                        "documents" => "title",
                        _ => "subject",
                    };
                    items[i][field] =
                        json!(format!("{} (edited in {domain})", sentence(&mut r, 2)));
                    items[i]["lastModified"] = json!("2026-12-01T00:00:00Z");
                    changed += 1;
                }
            }
            write(
                &path,
                entity,
                v[*entity].as_array().cloned().unwrap_or_default(),
            )?;
        }
    }
    Ok(changed)
}
