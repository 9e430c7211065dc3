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

/// One item of `entity` with id `id`, as `domain` would hold it.
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
pub fn data(out: &Path, items: usize, overlap: f64, seed: u64) -> std::io::Result<u64> {
    let mut total = 0;
    for (k, entity) in ENTITIES.iter().enumerate() {
        let mut r = Rng::new(seed.wrapping_mul(31).wrapping_add(k as u64));
        let shared = ((items as f64) * overlap.clamp(0.0, 1.0)) as usize;
        let mut personal = Vec::with_capacity(items);
        let mut business = Vec::with_capacity(items);
        for i in 0..shared {
            // Shared items are business ones, identical on both sides.
            let it = item(&mut r, entity, &format!("{entity}-s{i:05}"), "business");
            personal.push(it.clone());
            business.push(it);
        }
        for i in shared..items {
            personal.push(item(
                &mut r,
                entity,
                &format!("{entity}-p{i:05}"),
                "personal",
            ));
            business.push(item(
                &mut r,
                entity,
                &format!("{entity}-b{i:05}"),
                "business",
            ));
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
