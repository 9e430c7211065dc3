//! The merge core (CONTRACT §4.1): a pure function from both domains' items,
//! what each side's items look like after crossing (already mapped and
//! filtered by the plugins), and the stored base, to both domains' new items,
//! the new base, the conflict log and the counts.
//!
//! Architecture invariant: this crate does no I/O, reads no clock and calls no
//! plugin, and its dependencies (serde, serde_json, schemars, foldhash) give
//! it no way to: the compiler holds the line a comment used to. The sync time
//! arrives as a parameter; plugin output arrives as data; a refusal is a
//! [`Refusal`] value, which the host turns into its error with a code.
//!
//! The base holds, per id, each side's item as of the end of the last sync that
//! both sides took part in. A side "changed" a field when its current value
//! differs from its base value; only a field changed on both sides is a
//! conflict. Changes travel as field deltas computed in the receiving shape:
//! `view(current) - view(base)`. A field that a policy strips on the way out is
//! in neither view, so it never reaches, and is never erased on, the other side.

use foldhash::{HashMapExt, HashSetExt};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::borrow::{Borrow, Cow};
use std::collections::{BTreeMap, HashMap};

/// Maps and sets keyed by item ids, which the merge builds for every item.
/// Ids come from user data: foldhash is seeded per process, so no fixed set
/// of ids collides, and hashes short keys several times faster than SipHash.
pub type IdMap<K, V> = foldhash::HashMap<K, V>;
/// See [`IdMap`].
pub type IdSet<T> = foldhash::HashSet<T>;
use std::sync::Arc;

pub type Item = Map<String, Value>;

/// Why the merge produced nothing (both are `SYNC_CONFLICT`s to the host).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// One domain holds `id` twice, at positions `first` and `second`.
    DuplicateId {
        domain: String,
        id: String,
        first: usize,
        second: usize,
    },
    /// The sync would delete `deletions` of the `base_items` items both
    /// domains last agreed on from `domain`, or (`empty`) `domain` lists no
    /// items at all: an emptied or re-pointed store, most likely.
    MassDeletion {
        domain: String,
        deletions: usize,
        base_items: usize,
        empty: bool,
        /// The deletions the sync would make in all domains together (an
        /// emptied side's loss reaches the other side as deletions there).
        all_deletions: usize,
    },
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::DuplicateId {
                domain,
                id,
                first,
                second,
            } => write!(
                f,
                "domain `{domain}` holds the id `{id}` twice (items {first} and {second}); the \
                 host cannot tell which is real. Give one of them a new id"
            ),
            Refusal::MassDeletion {
                domain,
                deletions,
                base_items,
                empty,
                ..
            } => {
                if *empty {
                    write!(
                        f,
                        "domain `{domain}` lists no items, but the last sync saw {base_items}"
                    )?;
                } else {
                    write!(
                        f,
                        "the sync would delete {deletions} of the {base_items} items both \
                         domains last agreed on from `{domain}`"
                    )?;
                }
                write!(
                    f,
                    "; this looks like an emptied or re-pointed store, so nothing was changed. \
                     If the deletions are intended, run again with --allow-mass-delete (or \
                     --no-delete to keep everything)"
                )
            }
        }
    }
}

impl std::error::Error for Refusal {}

pub type Result<T> = std::result::Result<T, Refusal>;

/// Fields the host manages; never a change, never a conflict.
pub const SYNCED_AT: &str = "syncedAt";
pub const SYNC_DIRECTION: &str = "syncDirection";
pub const LAST_MODIFIED: &str = "lastModified";

fn is_meta(field: &str) -> bool {
    field == SYNCED_AT || field == SYNC_DIRECTION || field == LAST_MODIFIED
}

/// One side of the sync: the `--source` domain or the `--target` domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    Source,
    Target,
}

impl Side {
    pub fn other(self) -> Side {
        match self {
            Side::Source => Side::Target,
            Side::Target => Side::Source,
        }
    }
}

/// The seed's directions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Bidirectional,
    SourceToTarget,
    TargetToSource,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Bidirectional => "bidirectional",
            Direction::SourceToTarget => "source_to_target",
            Direction::TargetToSource => "target_to_source",
        }
    }

    /// Whether `side` sends its changes to the other side.
    pub fn sends(self, side: Side) -> bool {
        match self {
            Direction::Bidirectional => true,
            Direction::SourceToTarget => side == Side::Source,
            Direction::TargetToSource => side == Side::Target,
        }
    }

    /// The side whose value wins a conflict.
    pub fn winner(self) -> Side {
        match self {
            Direction::TargetToSource => Side::Target,
            _ => Side::Source,
        }
    }
}

/// One id's base: each side's item as both last agreed on it. The merge
/// shares each with the side's new item when it is that item (the usual
/// case), so that the base costs no copy; read from disk, two sides that
/// agree in content are one copy (every use of the base ignores the
/// bookkeeping fields, in which alone they may differ).
#[derive(Debug, Clone, PartialEq)]
pub struct BaseEntry {
    pub source: Arc<Item>,
    pub target: Arc<Item>,
}

impl BaseEntry {
    /// An entry whose two sides are the same item.
    pub fn same(item: Item) -> BaseEntry {
        let item = Arc::new(item);
        BaseEntry {
            source: Arc::clone(&item),
            target: item,
        }
    }

    /// An entry sharing `have`'s item and the other side's (`other`).
    pub fn of(have: Side, item: &Arc<Item>, other: &Arc<Item>) -> BaseEntry {
        let (source, target) = match have {
            Side::Source => (item, other),
            Side::Target => (other, item),
        };
        BaseEntry {
            source: Arc::clone(source),
            target: Arc::clone(target),
        }
    }

    pub fn get(&self, side: Side) -> &Item {
        match side {
            Side::Source => &self.source,
            Side::Target => &self.target,
        }
    }
}

pub type Base = BTreeMap<String, BaseEntry>;

/// An item as the receiving side would get it.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum View {
    /// The policy withholds it (or no view was made: a settled item).
    #[default]
    Withheld,
    /// Exactly the item itself (nothing to map, nothing filtered), which is
    /// most items: no copy is made.
    Same,
    /// The item as it crosses, when that differs from the item and is no
    /// [`Patch`] of it.
    Item(Item),
    /// The item with some fields changed or left out.
    Patch(Patch),
}

impl View {
    /// The view `view` of `item`: `Same` when they are equal, a [`Patch`]
    /// when `view` is `item` with fields changed or left out (in `item`'s
    /// order), else the view itself.
    pub fn of(item: &Item, view: Item) -> View {
        match Patch::between(item, view) {
            Ok(p) if p.changes.is_empty() => View::Same,
            Ok(p) => View::Patch(p),
            Err(view) => View::Item(view),
        }
    }

    /// The view of `item` to read, without making it; `None` when withheld.
    fn seen<'a>(&'a self, item: &'a Item) -> Option<Seen<'a>> {
        match self {
            View::Withheld => None,
            View::Same => Some(Seen::whole(item)),
            View::Item(v) => Some(Seen::whole(v)),
            View::Patch(p) => Some(Seen {
                item,
                patch: Some(p),
            }),
        }
    }

    /// The view of `item`; `None` when withheld. A copy only for a patch.
    pub fn resolve<'a>(&'a self, item: &'a Item) -> Option<Cow<'a, Item>> {
        match self {
            View::Withheld => None,
            View::Same => Some(Cow::Borrowed(item)),
            View::Item(v) => Some(Cow::Borrowed(v)),
            View::Patch(p) => Some(Cow::Owned(p.apply(item))),
        }
    }

    /// The view of `item` as an item of its own (a copy only for `Same`).
    pub fn into_item(self, item: &Item) -> Option<Item> {
        match self {
            View::Withheld => None,
            View::Same => Some(item.clone()),
            View::Item(v) => Some(v),
            View::Patch(p) => Some(p.apply(item)),
        }
    }
}

/// A view read in place: an item, or an item and the patch that makes the
/// view of it. The merge's comparisons read views this way, so a patch is
/// applied only where an item is made of it.
#[derive(Clone, Copy)]
struct Seen<'a> {
    item: &'a Item,
    patch: Option<&'a Patch>,
}

impl<'a> Seen<'a> {
    /// An item read as it is.
    fn whole(item: &'a Item) -> Seen<'a> {
        Seen { item, patch: None }
    }

    /// How many fields the view has.
    fn len(self) -> usize {
        let left_out = self
            .patch
            .map_or(0, |p| p.changes.iter().filter(|(_, v)| v.is_none()).count());
        self.item.len().saturating_sub(left_out)
    }

    /// The view as an item of its own, with room for `extra` more fields. A
    /// merge adds its stamps (and a field only the other side had) to an
    /// item it makes; one made at its own size and then grown past its
    /// table's capacity had its entries doubled, 11 MiB of a first sync's
    /// peak at the limits (BENCHMARKS.md, "Items made at their final size").
    fn to_item(self, extra: usize) -> Item {
        let mut m = Item::with_capacity(self.len() + extra);
        m.extend(self.entries().map(|(k, v)| (k.clone(), v.clone())));
        m
    }

    fn entries(self) -> impl Iterator<Item = (&'a String, &'a Value)> {
        let mut changes = self.patch.map(|p| p.changes.iter().peekable());
        self.item.iter().filter_map(move |(k, v)| {
            match changes.as_mut().and_then(|c| c.next_if(|(ck, _)| ck == k)) {
                Some((_, None)) => None,
                Some((_, Some(now))) => Some((k, now)),
                None => Some((k, v)),
            }
        })
    }

    fn get(self, k: &str) -> Option<&'a Value> {
        match self
            .patch
            .and_then(|p| p.changes.iter().find(|(ck, _)| ck == k))
        {
            Some((_, now)) => now.as_ref(),
            None => self.item.get(k),
        }
    }
}

/// A view as the changes it makes to its item, for a view that keeps the
/// item's fields in their order and only changes or leaves out some: a
/// plugin that normalises a phone number, or a policy that strips a
/// message's body. Held as the whole view, every such item was a second
/// copy of the item for as long as its type was being planned (BENCHMARKS.md,
/// "Views as patches").
#[derive(Debug, Clone, PartialEq)]
pub struct Patch {
    /// In the item's order: each field changed (`Some`, its new value) or
    /// left out (`None`).
    changes: Vec<(String, Option<Value>)>,
}

impl Patch {
    /// The patch that makes `view` of `item`; `Err(view)` when `view` holds
    /// a field `item` lacks or has the fields in another order.
    pub fn between(item: &Item, view: Item) -> std::result::Result<Patch, Item> {
        // First by reference: which of the item's fields the view keeps, in
        // order, and whether it adds none.
        let mut kept = Vec::with_capacity(view.len());
        let mut v = view.iter().peekable();
        for (k, _) in item {
            if v.peek().is_some_and(|(vk, _)| *vk == k) {
                v.next();
                kept.push(true);
            } else {
                kept.push(false);
            }
        }
        if v.next().is_some() {
            return Err(view);
        }
        // Then the view's values move into the patch where they differ.
        let mut changes = Vec::new();
        let mut values = view.into_iter();
        for ((k, was), kept) in item.iter().zip(kept) {
            if !kept {
                changes.push((k.clone(), None));
            } else if let Some((_, now)) = values.next()
                && !identical(&now, was)
            {
                changes.push((k.clone(), Some(now)));
            }
        }
        Ok(Patch { changes })
    }

    /// The view: `item` with the changes made, in a map made at its final
    /// size.
    pub fn apply(&self, item: &Item) -> Item {
        Seen {
            item,
            patch: Some(self),
        }
        .to_item(0)
    }
}

/// Whether two values are written the same: objects' keys in the same
/// order too (`==` ignores their order), so that a patch keeps the view's
/// nested order exactly.
fn identical(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y)
                    .all(|((ka, va), (kb, vb))| ka == kb && identical(va, vb))
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(va, vb)| identical(va, vb))
        }
        _ => a == b,
    }
}

impl From<Option<Item>> for View {
    fn from(v: Option<Item>) -> View {
        v.map_or(View::Withheld, View::Item)
    }
}

/// One side's input. Its items and views move into the merge, which hands
/// the items back (changed or not) in its output, each shared with the new
/// base where that holds it: at the limits, copying every item would cost
/// more than merging them.
#[derive(Debug, Clone)]
pub struct SideInput<'a> {
    pub domain: &'a str,
    /// Current items, in file order.
    pub items: Vec<Arc<Item>>,
    /// For a sending side: each item as the other side receives it (`None`:
    /// withheld by policy), aligned with `items`. Empty for a side that does
    /// not send.
    pub views: Vec<View>,
    /// For a sending side: the view of the base item of each id whose current
    /// item differs from its base (see [`base_items_needing_views`]).
    pub base_views: &'a HashMap<String, Option<Item>>,
    /// For a receiving side: some of its own items normalised in its own
    /// shape (the plugin's map from this domain to itself), by id; a value
    /// that differs from an incoming one only in its writing (`+1-555-0100`
    /// against `+15550100`) is then no change and no conflict. Only items that
    /// differ from what the other side sends where that could matter need to
    /// be here (see [`items_needing_normalization`]); others compare as
    /// written.
    pub normalized: &'a HashMap<String, Item>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Options {
    pub no_delete: bool,
    pub allow_mass_delete: bool,
}

pub struct MergeInput<'a> {
    pub source: SideInput<'a>,
    pub target: SideInput<'a>,
    /// The stored base (moved in; the output holds the new one).
    pub base: Base,
    pub direction: Direction,
    pub options: Options,
    pub id_field: &'a str,
    /// The sync's time, written into `syncedAt` of the items it changes.
    pub synced_at: &'a str,
    /// How many ids were left out of `source`, `target` and `base` because
    /// the caller knows them settled: both sides hold them exactly as the
    /// base does (the pipeline knows it from the digests of their text).
    /// They count as unchanged, and as base entries for the guard rails.
    pub settled_count: usize,
}

/// A value that lost, kept for review (CONTRACT §8).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Conflict {
    pub item_id: String,
    /// The field; `None` when one side deleted the item the other changed.
    pub field: Option<String>,
    /// The source domain's value (`None`: absent or deleted).
    pub source_value: Option<Value>,
    pub target_value: Option<Value>,
    pub base_value: Option<Value>,
    pub winner: Side,
}

/// A previous version that a sync overwrote or deleted.
#[derive(Debug, Clone, PartialEq)]
pub struct Displaced {
    pub side: Side,
    pub item: Arc<Item>,
    pub deleted: bool,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    pub added: usize,
    pub updated: usize,
    pub deleted: usize,
    pub unchanged: usize,
    pub conflicts: usize,
    pub merged: usize,
}

#[derive(Debug, Clone)]
pub struct MergeOutput {
    /// Both sides' new items; an item the new base holds for that side is
    /// the same allocation as the base's (see [`BaseEntry`]).
    pub source_items: Vec<Arc<Item>>,
    pub target_items: Vec<Arc<Item>>,
    pub source_changed: bool,
    pub target_changed: bool,
    pub base: Base,
    /// Whether `base` differs from the input's base. (May be true of an
    /// equal base after [`combine`]; never false of a different one.)
    pub base_changed: bool,
    /// Whether the merge changed an item that its sending side withheld when
    /// the views were made: its new content may cross, so the caller makes
    /// the views again and merges once more (see [`combine`]).
    pub again: bool,
    pub stats: Stats,
    pub conflicts: Vec<Conflict>,
    pub displaced: Vec<Displaced>,
}

/// Item equality that ignores the host's bookkeeping fields and field order.
pub fn content_eq(a: &Item, b: &Item) -> bool {
    if std::ptr::eq(a, b) {
        return true;
    }
    seen_content_eq(Seen::whole(a), b)
}

/// [`content_eq`] of a view read in place and an item.
fn seen_content_eq(a: Seen<'_>, b: &Item) -> bool {
    let content_a = || a.entries().filter(|(k, _)| !is_meta(k));
    let content_b = || b.iter().filter(|(k, _)| !is_meta(k));
    match ordered_eq(content_a(), content_b()) {
        Some(eq) => eq,
        None => {
            content_a().count() == content_b().count()
                && content_a().all(|(k, v)| b.get(k).is_some_and(|w| value_eq(v, w)))
        }
    }
}

/// Compares two maps' entries in order, the usual case (both written by the
/// same program, or one copied from the other), which needs no hashing:
/// `Some(result)` when the keys come in the same order, or `None` when they
/// do not and the caller must compare by lookup.
fn ordered_eq<'a>(
    mut a: impl Iterator<Item = (&'a String, &'a Value)>,
    mut b: impl Iterator<Item = (&'a String, &'a Value)>,
) -> Option<bool> {
    loop {
        match (a.next(), b.next()) {
            (None, None) => return Some(true),
            // Keys are unique within a map, so one value differing under the
            // same key settles it.
            (Some((ka, va)), Some((kb, vb))) if ka == kb => {
                if !value_eq(va, vb) {
                    return Some(false);
                }
            }
            _ => return None,
        }
    }
}

/// `Value` equality (objects compare regardless of key order, as
/// `PartialEq` does) with [`ordered_eq`]'s fast path for objects.
fn value_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && ordered_eq(x.iter(), y.iter()).unwrap_or_else(|| {
                    x.iter()
                        .all(|(k, v)| y.get(k).is_some_and(|w| value_eq(v, w)))
                })
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(v, w)| value_eq(v, w))
        }
        _ => a == b,
    }
}

/// An item's id as the merge sees it (`""` when it has none).
pub fn id_of<'a>(item: &'a Item, id_field: &str) -> &'a str {
    cds_policy::item_id(item, id_field).unwrap_or("")
}

/// The ids neither side changed since the base: the merge leaves them as
/// they are without looking at their views, so the pipeline need not make
/// them (in a re-sync, almost every item).
pub fn settled_ids<'a, I: Borrow<Item>>(
    source: &'a [I],
    target: &[I],
    base: &Base,
    id_field: &str,
) -> IdSet<&'a str> {
    if base.is_empty() {
        return IdSet::new();
    }
    let t: IdMap<&str, &Item> = target
        .iter()
        .map(|i| (id_of(i.borrow(), id_field), i.borrow()))
        .collect();
    source
        .iter()
        .filter_map(|s| {
            let s: &'a Item = s.borrow();
            let id = id_of(s, id_field);
            let b = base.get(id)?;
            let t = t.get(id)?;
            (content_eq(s, &b.source) && content_eq(t, &b.target)).then_some(id)
        })
        .collect()
}

/// The base items of `side` that need a view: those whose current item
/// differs from the base. The pipeline maps and filters exactly these.
/// `settled_ids` (see [`settled_ids`]) are known to equal the base and skipped.
pub fn base_items_needing_views<'a, I: Borrow<Item>>(
    items: &[I],
    base: &'a Base,
    side: Side,
    id_field: &str,
    settled_ids: &IdSet<&str>,
) -> Vec<&'a Item> {
    items
        .iter()
        .filter_map(|it| {
            let it = it.borrow();
            let id = id_of(it, id_field);
            if settled_ids.contains(id) {
                return None;
            }
            let entry = base.get(id)?;
            let b = entry.get(side);
            (!content_eq(it, b)).then_some(b)
        })
        .collect()
}

/// The receiving side's items worth normalising: those whose id the sending
/// side also holds, with a view that differs from them where normalising
/// could matter. Without a base entry the sender's change is its whole view,
/// so only a field the view holds with another value can be a difference in
/// writing alone (a field the policy stripped from the view is no change at
/// all); with one, any difference counts, as a field the sender removed
/// since is a change too.
pub fn items_needing_normalization<'a, I: Borrow<Item>>(
    receiver: &'a [I],
    sender: &[I],
    sender_views: &[View],
    id_field: &str,
    base: &Base,
) -> Vec<&'a Item> {
    // Each view is made (a patch applied) only for an id the receiver
    // holds, and dropped once compared.
    let views: IdMap<&str, (&Item, &View)> = sender
        .iter()
        .zip(sender_views)
        .filter(|(_, v)| !matches!(v, View::Withheld))
        .map(|(s, v)| {
            let s = s.borrow();
            (id_of(s, id_field), (s, v))
        })
        .collect();
    receiver
        .iter()
        .map(Borrow::borrow)
        .filter(|r| {
            let id = id_of(r, id_field);
            let view = views.get(id).and_then(|(s, v)| v.seen(s));
            view.is_some_and(|v| {
                if base.contains_key(id) {
                    !seen_content_eq(v, r)
                } else {
                    v.entries()
                        .any(|(k, val)| !is_meta(k) && r.get(k).is_none_or(|w| !value_eq(val, w)))
                }
            })
        })
        .collect()
}

/// Index of each id; duplicate ids are refused.
fn index(items: &[Arc<Item>], id_field: &str, domain: &str) -> Result<IdMap<String, usize>> {
    let mut map = IdMap::with_capacity(items.len());
    for (i, it) in items.iter().enumerate() {
        let id = id_of(it, id_field);
        if let Some(first) = map.insert(id.to_string(), i) {
            return Err(Refusal::DuplicateId {
                domain: domain.to_string(),
                id: id.to_string(),
                first,
                second: i,
            });
        }
    }
    Ok(map)
}

/// A field change: set to a value, or remove.
type Delta = Vec<(String, Option<Value>)>;

fn delta(view_now: Seen<'_>, view_base: Option<&Item>) -> Delta {
    let mut d = Delta::new();
    match view_base {
        None => {
            for (k, v) in view_now.entries() {
                if !is_meta(k) {
                    d.push((k.clone(), Some(v.clone())));
                }
            }
        }
        Some(b) => {
            for (k, v) in view_now.entries() {
                if !is_meta(k) && b.get(k) != Some(v) {
                    d.push((k.clone(), Some(v.clone())));
                }
            }
            for k in b.keys() {
                if !is_meta(k) && view_now.get(k).is_none() {
                    d.push((k.clone(), None));
                }
            }
        }
    }
    d
}

fn later(a: Option<&Value>, b: Option<&Value>) -> Option<Value> {
    let parse = |v: Option<&Value>| {
        v.and_then(Value::as_str)
            .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
    };
    match (parse(a), parse(b)) {
        (Some(x), Some(y)) if y > x => b.cloned(),
        (Some(_), _) => a.cloned(),
        (None, Some(_)) => b.cloned(),
        (None, None) => a.or(b).cloned(),
    }
}

fn set_field(item: &mut Item, field: &str, value: Option<Value>) {
    match value {
        Some(v) => {
            item.insert(field.to_string(), v);
        }
        None => {
            item.shift_remove(field);
        }
    }
}

/// The merge's input and what its decisions have added up to so far.
struct Ctx<'a> {
    input: &'a MergeInput<'a>,
    tally: Tally,
}

impl<'a> Ctx<'a> {
    fn side(&self, s: Side) -> &'a SideInput<'a> {
        match s {
            Side::Source => &self.input.source,
            Side::Target => &self.input.target,
        }
    }

    fn direction_label(&self, from: Side) -> String {
        format!(
            "{}->{}",
            self.side(from).domain,
            self.side(from.other()).domain
        )
    }

    /// The change `from` made to item `id` since the base, in the receiving
    /// shape; `None` when the item does not cross (withheld). `views` are
    /// the sender's.
    fn sender_delta(
        &self,
        from: Side,
        views: &[View],
        idx: usize,
        base: Option<&BaseEntry>,
    ) -> Option<Delta> {
        let s = self.side(from);
        let view_now = views.get(idx)?.seen(&s.items[idx])?;
        let view_base = match base {
            None => None,
            Some(b) if content_eq(&s.items[idx], b.get(from)) => return Some(Delta::new()),
            Some(_) => s
                .base_views
                .get(id_of(&s.items[idx], self.input.id_field))
                .and_then(|v| v.as_ref()),
        };
        Some(delta(view_now, view_base))
    }

    fn record(&mut self, c: Conflict) {
        self.tally.conflicted.insert(c.item_id.clone());
        self.tally.conflicts.push(c);
    }

    /// Applies `d` (from `from`) to the receiving item `r`, copying it only
    /// if a field changes. Returns whether `r` changed. A field the receiver
    /// changed too is a conflict: the winner's value stays, and an
    /// overwritten receiver value is logged.
    fn apply(
        &mut self,
        from: Side,
        d: &Delta,
        r: &mut Cow<'_, Item>,
        r_norm: Option<&Item>,
        r_base: Option<&Item>,
        sender_item: &Item,
    ) -> bool {
        let sender_wins = self.input.direction.winner() == from;
        let mut changed = false;
        for (field, new) in d {
            let cur = r.get(field);
            if cur == new.as_ref() || r_norm.is_some_and(|n| n.get(field) == new.as_ref()) {
                continue;
            }
            let receiver_changed = match r_base {
                Some(b) => b.get(field) != cur,
                None => cur.is_some(),
            };
            if receiver_changed {
                if !sender_wins {
                    continue;
                }
                let id = id_of(r, self.input.id_field).to_string();
                let (src, tgt) = match from {
                    Side::Source => (new.clone(), cur.cloned()),
                    Side::Target => (cur.cloned(), new.clone()),
                };
                self.record(Conflict {
                    item_id: id,
                    field: Some(field.clone()),
                    source_value: src,
                    target_value: tgt,
                    base_value: r_base.and_then(|b| b.get(field).cloned()),
                    winner: from,
                });
            }
            if let Cow::Borrowed(b) = r {
                // Its stamps, and the fields it gains.
                let gains = d
                    .iter()
                    .filter(|(f, v)| v.is_some() && !b.contains_key(f.as_str()))
                    .count();
                *r = Cow::Owned(Seen::whole(b).to_item(2 + gains));
            }
            set_field(r.to_mut(), field, new.clone());
            changed = true;
        }
        if changed {
            let r = r.to_mut();
            let lm = later(r.get(LAST_MODIFIED), sender_item.get(LAST_MODIFIED));
            set_field(r, LAST_MODIFIED, lm);
            r.insert(SYNCED_AT.into(), Value::String(self.input.synced_at.into()));
            r.insert(
                SYNC_DIRECTION.into(),
                Value::String(self.direction_label(from)),
            );
        }
        changed
    }

    /// A new item on the receiving side, made from the sender's view (of
    /// `item`): its fields in their order, then the stamps, in a map made at
    /// its final size (see [`Seen::to_item`]).
    fn fresh(&self, from: Side, view: View, item: &Item) -> Item {
        let mut m = match view {
            // Moved, not copied: the plugin's parsed item is used up here.
            View::Item(v) => {
                let mut m = Item::with_capacity(v.len() + 2);
                m.extend(v);
                m
            }
            View::Patch(p) => Seen {
                item,
                patch: Some(&p),
            }
            .to_item(2),
            View::Same | View::Withheld => Seen::whole(item).to_item(2),
        };
        // A stamp of an earlier sync goes; this sync's come last.
        m.shift_remove(SYNCED_AT);
        m.shift_remove(SYNC_DIRECTION);
        m.insert(SYNCED_AT.into(), Value::String(self.input.synced_at.into()));
        m.insert(
            SYNC_DIRECTION.into(),
            Value::String(self.direction_label(from)),
        );
        m
    }
}

fn id_only(id_field: &str, id: &str) -> Item {
    let mut m = Item::new();
    m.insert(id_field.to_string(), Value::String(id.to_string()));
    m
}

/// What happens to one side's copy of an id.
enum Fate {
    Replace(Arc<Item>),
    Delete,
}

/// Where an id is held: by both sides (at these positions), or by one.
#[derive(Debug, Clone, Copy)]
enum Held {
    Both(usize, usize),
    One(Side, usize),
}

/// What the per-id decisions add up to, before assembly.
#[derive(Default)]
struct Tally {
    stats: Stats,
    /// The new base entries of ids that were not settled.
    new_base: Base,
    base_changed: bool,
    /// Per side: the ids whose item is replaced or deleted.
    fates: [IdMap<String, Fate>; 2],
    /// Per side: the items that arrive new.
    appended: [Vec<Arc<Item>>; 2],
    /// Per side: how many items the sync deletes there.
    deletions: [usize; 2],
    conflicts: Vec<Conflict>,
    conflicted: IdSet<String>,
}

fn slot(s: Side) -> usize {
    s as usize
}

/// Merges both sides (see the module docs and CONTRACT §4.1): a decision
/// per id ([`Ctx::both_sides`], [`Ctx::one_side`]), then the guard rails
/// ([`guard_rails`]), then the assembly of each side's items ([`assemble`]).
pub fn merge(mut input: MergeInput<'_>) -> Result<MergeOutput> {
    let idf = input.id_field;
    let src_idx = index(&input.source.items, idf, input.source.domain)?;
    let tgt_idx = index(&input.target.items, idf, input.target.domain)?;
    // Moved out so that the decisions can take from them while `ctx` reads
    // the rest of the input.
    let mut views = [
        std::mem::take(&mut input.source.views),
        std::mem::take(&mut input.target.views),
    ];
    let mut old_base = std::mem::take(&mut input.base);
    let base_len = old_base.len() + input.settled_count;
    let mut ctx = Ctx {
        input: &input,
        tally: Tally {
            stats: Stats {
                unchanged: input.settled_count,
                ..Stats::default()
            },
            ..Tally::default()
        },
    };
    // Settled ids (in a re-sync, almost all) keep their entry where it is in
    // `old_base`, which becomes the new base once the others are merged in:
    // no entry is moved or id copied for them.
    let mut settled_here = 0;
    for (id, held) in every_id(&input, &src_idx, &tgt_idx) {
        if let Held::Both(si, ti) = held
            && old_base.get(id).is_some_and(|b| {
                content_eq(&input.source.items[si], &b.source)
                    && content_eq(&input.target.items[ti], &b.target)
            })
        {
            // Neither side changed it since the base, so nothing travels
            // whatever its view (which may not have been made).
            ctx.tally.stats.unchanged += 1;
            settled_here += 1;
            continue;
        }
        let base = old_base.remove(id);
        match held {
            Held::Both(si, ti) => ctx.both_sides(&views, id, [si, ti], base),
            Held::One(have, i) => ctx.one_side(&mut views[slot(have)], id, have, i, base),
        }
    }
    let mut tally = ctx.tally;
    // What is left of the old base: the settled entries, and ids only it
    // knew (deleted on both sides), which are forgotten.
    if old_base.len() > settled_here {
        tally.base_changed = true;
        old_base.retain(|id, _| src_idx.contains_key(id) || tgt_idx.contains_key(id));
    }
    let new_base = join_bases(old_base, std::mem::take(&mut tally.new_base));
    guard_rails(&input, &tally.deletions, base_len)?;
    Ok(assemble(input, &views, tally, new_base))
}

/// Every id, in a deterministic order: source's, then target's new ones,
/// with where each is held. (Ids only the base still knows, deleted on both
/// sides, are not among them: they are forgotten.)
fn every_id<'a>(
    input: &'a MergeInput<'_>,
    src_idx: &IdMap<String, usize>,
    tgt_idx: &IdMap<String, usize>,
) -> Vec<(&'a str, Held)> {
    let idf = input.id_field;
    let mut ids = Vec::with_capacity(input.source.items.len() + input.target.items.len());
    for (si, item) in input.source.items.iter().enumerate() {
        let id = id_of(item, idf);
        ids.push(match tgt_idx.get(id) {
            Some(&ti) => (id, Held::Both(si, ti)),
            None => (id, Held::One(Side::Source, si)),
        });
    }
    for (ti, item) in input.target.items.iter().enumerate() {
        let id = id_of(item, idf);
        if !src_idx.contains_key(id) {
            ids.push((id, Held::One(Side::Target, ti)));
        }
    }
    ids
}

/// The smaller map goes into the larger: entry by entry when it is much
/// smaller (a re-sync), else by `append`, which rebuilds the tree.
fn join_bases(mut a: Base, mut b: Base) -> Base {
    if b.len() > a.len() {
        std::mem::swap(&mut a, &mut b);
    }
    if b.len() < a.len() / 8 {
        a.extend(b);
    } else {
        a.append(&mut b);
    }
    a
}

/// Guard rails against an empty or re-pointed store: a side that lists no
/// items though the base knows some, or a sync that would delete more than
/// half of what both last agreed on (and more than ten), is refused unless
/// `allow_mass_delete`.
fn guard_rails(input: &MergeInput<'_>, deletions: &[usize; 2], base_len: usize) -> Result<()> {
    if input.options.allow_mass_delete || base_len == 0 {
        return Ok(());
    }
    let side = |s: Side| match s {
        Side::Source => &input.source,
        Side::Target => &input.target,
    };
    let is_empty = |s: Side| side(s).items.is_empty() && input.settled_count == 0;
    // An empty side is the likelier explanation, so it is named first.
    let empty = [Side::Source, Side::Target]
        .into_iter()
        .find(|s| is_empty(*s));
    let mass = [Side::Source, Side::Target].into_iter().find(|s| {
        let gone = deletions[slot(*s)];
        gone * 2 > base_len && gone > 10
    });
    match empty.into_iter().chain(mass).next() {
        None => Ok(()),
        Some(which) => Err(Refusal::MassDeletion {
            domain: side(which).domain.to_string(),
            deletions: deletions[slot(which)],
            base_items: base_len,
            empty: is_empty(which),
            all_deletions: deletions.iter().sum(),
        }),
    }
}

/// Each side's new items, in file order with new ones appended; replaced
/// and deleted versions are displaced (moved, not copied).
fn assemble(
    mut input: MergeInput<'_>,
    views: &[Vec<View>; 2],
    mut tally: Tally,
    base: Base,
) -> MergeOutput {
    let idf = input.id_field;
    let dir = input.direction;
    let mut displaced = Vec::new();
    let mut again = false;
    let mut out_items: [Vec<Arc<Item>>; 2] = [Vec::new(), Vec::new()];
    let mut changed = [false, false];
    let sides = [
        (Side::Source, std::mem::take(&mut input.source.items)),
        (Side::Target, std::mem::take(&mut input.target.items)),
    ];
    for (side, items) in sides {
        let k = slot(side);
        // A side whose withheld item changed: that item may cross now.
        let was_withheld =
            |i: usize| dir.sends(side) && matches!(views[k].get(i), Some(View::Withheld));
        let mut v = Vec::with_capacity(items.len() + tally.appended[k].len());
        for (i, it) in items.into_iter().enumerate() {
            match tally.fates[k].remove(id_of(&it, idf)) {
                None => v.push(it),
                Some(Fate::Replace(n)) => {
                    changed[k] = true;
                    again |= was_withheld(i);
                    v.push(n);
                    displaced.push(Displaced {
                        side,
                        item: it,
                        deleted: false,
                    });
                }
                Some(Fate::Delete) => {
                    changed[k] = true;
                    displaced.push(Displaced {
                        side,
                        item: it,
                        deleted: true,
                    });
                }
            }
        }
        if !tally.appended[k].is_empty() {
            changed[k] = true;
        }
        v.append(&mut tally.appended[k]);
        out_items[k] = v;
    }
    let mut stats = tally.stats;
    stats.conflicts = tally.conflicted.len();
    let [source_items, target_items] = out_items;
    let mut all: IdSet<&str> = source_items.iter().map(|i| id_of(i, idf)).collect();
    all.extend(target_items.iter().map(|i| id_of(i, idf)));
    stats.merged = all.len() + input.settled_count;
    MergeOutput {
        source_changed: changed[0],
        target_changed: changed[1],
        source_items,
        target_items,
        base,
        base_changed: tally.base_changed,
        again,
        stats,
        conflicts: tally.conflicts,
        displaced,
    }
}

impl Ctx<'_> {
    /// The decision for an id both sides hold (at `pos`) and not settled:
    /// each sending side's change since the base travels to the other, a
    /// field both changed is a conflict the direction's winner takes, and
    /// the new base entry is what both now agree on.
    fn both_sides(
        &mut self,
        views: &[Vec<View>; 2],
        id: &str,
        pos: [usize; 2],
        old: Option<BaseEntry>,
    ) {
        let input = self.input;
        let (idf, dir) = (input.id_field, input.direction);
        let s_item = &input.source.items[pos[0]];
        let t_item = &input.target.items[pos[1]];
        let base = old.as_ref();
        let mut new_s = Cow::Borrowed(&**s_item);
        let mut new_t = Cow::Borrowed(&**t_item);
        // What each side sends (None: it sends nothing for this id, being a
        // one-way receiver or withheld by policy).
        let deltas: [Option<Delta>; 2] = [Side::Source, Side::Target].map(|from| {
            if dir.sends(from) {
                self.sender_delta(from, &views[slot(from)], pos[slot(from)], base)
            } else {
                None
            }
        });
        for from in [Side::Source, Side::Target] {
            let Some(d) = &deltas[slot(from)] else {
                continue;
            };
            let to = from.other();
            let sender_item = &self.side(from).items[pos[slot(from)]];
            let r_base = base.map(|b| b.get(to));
            let r_norm = self.side(to).normalized.get(id);
            let r = if to == Side::Target {
                &mut new_t
            } else {
                &mut new_s
            };
            self.apply(from, d, r, r_norm, r_base, sender_item);
        }
        // A side that sent nothing agreed only to what it received: its base
        // is the old one plus that, so that its own fields count as changes,
        // and travel, once it sends.
        let mut agreed = [None::<Item>, None::<Item>];
        for side in [Side::Source, Side::Target] {
            if deltas[slot(side)].is_some() {
                continue;
            }
            let mut a = base.map_or_else(|| id_only(idf, id), |b| b.get(side).clone());
            for (f, v) in deltas[slot(side.other())].iter().flatten() {
                set_field(&mut a, f, v.clone());
            }
            // Store the item itself when it is what was agreed, so the base
            // does not churn on bookkeeping fields.
            let actual = if side == Side::Source { &new_s } else { &new_t };
            if !content_eq(&a, actual) {
                agreed[slot(side)] = Some(a);
            }
        }
        let s_changed = matches!(new_s, Cow::Owned(_)) && !content_eq(&new_s, s_item);
        let t_changed = matches!(new_t, Cow::Owned(_)) && !content_eq(&new_t, t_item);
        let t = &mut self.tally;
        t.stats.updated += usize::from(s_changed) + usize::from(t_changed);
        if !s_changed && !t_changed {
            t.stats.unchanged += 1;
        }
        // Each side's new item, shared with the base where the base holds it
        // (an item unchanged in content stays as it was).
        let new_of = |changed: bool, new: Cow<'_, Item>, old: &Arc<Item>| {
            if changed {
                Arc::new(new.into_owned())
            } else {
                Arc::clone(old)
            }
        };
        let (new_s, new_t) = (
            new_of(s_changed, new_s, s_item),
            new_of(t_changed, new_t, t_item),
        );
        let [a_s, a_t] = agreed;
        let entry = BaseEntry {
            source: a_s.map_or_else(|| Arc::clone(&new_s), Arc::new),
            target: a_t.map_or_else(|| Arc::clone(&new_t), Arc::new),
        };
        t.base_changed |= old.as_ref() != Some(&entry);
        t.new_base.insert(id.to_string(), entry);
        if s_changed {
            t.fates[0].insert(id.to_string(), Fate::Replace(new_s));
        }
        if t_changed {
            t.fates[1].insert(id.to_string(), Fate::Replace(new_t));
        }
    }

    /// The decision for an id only `have` holds (at `idx`; `views` are
    /// `have`'s): new there, it travels; deleted on the other side since the
    /// base, the deletion travels unless `have` changed it, in which case the
    /// change beats the deletion and is logged.
    fn one_side(
        &mut self,
        views: &mut [View],
        id: &str,
        have: Side,
        idx: usize,
        base: Option<BaseEntry>,
    ) {
        let input = self.input;
        let dir = input.direction;
        let lack = have.other();
        let item = &self.side(have).items[idx];
        // This id's only view: each id is decided once.
        let view = views
            .get_mut(idx)
            .map(std::mem::take)
            .filter(|v| !matches!(v, View::Withheld));
        let Some(b) = base else {
            // New on `have`: it travels if `have` sends and the policy lets
            // it cross.
            if dir.sends(have)
                && let Some(v) = view
            {
                self.arrive(have, item, v, id, None);
            } else {
                self.tally.stats.unchanged += 1;
            }
            return;
        };
        // `lack` deleted it since the last sync.
        let changed = !content_eq(item, b.get(have));
        if changed && dir.sends(have) {
            // A change beats a deletion: it goes back. The log keeps what
            // crossed (the view), never more.
            let crossed = view
                .as_ref()
                .and_then(|v| v.resolve(item))
                .map(|v| Value::Object(v.into_owned()));
            let (source_value, target_value) = match have {
                Side::Source => (crossed, None),
                Side::Target => (None, crossed),
            };
            self.record(Conflict {
                item_id: id.to_string(),
                field: None,
                source_value,
                target_value,
                base_value: Some(Value::Object(b.get(lack).clone())),
                winner: have,
            });
            match view {
                Some(v) => self.arrive(have, item, v, id, Some(b)),
                None => {
                    self.tally.base_changed = true;
                    self.tally.stats.unchanged += 1;
                }
            }
        } else if changed {
            // `have` only receives; its change stays, logged (by id only:
            // its content never crossed).
            self.record(Conflict {
                item_id: id.to_string(),
                field: None,
                source_value: None,
                target_value: None,
                base_value: None,
                winner: have,
            });
            self.tally.base_changed = true;
            self.tally.stats.unchanged += 1;
        } else if dir.sends(lack) && !input.options.no_delete {
            // Unchanged here, deleted there: carry the deletion.
            let t = &mut self.tally;
            t.stats.deleted += 1;
            t.deletions[slot(have)] += 1;
            t.fates[slot(have)].insert(id.to_string(), Fate::Delete);
            t.base_changed = true;
        } else {
            // One-way towards the side that deleted it (it stays deleted),
            // or --no-delete: remember the base.
            self.tally.new_base.insert(id.to_string(), b);
            self.tally.stats.unchanged += 1;
        }
    }

    /// `have`'s `item`, crossing as `view`, arrives new on the other side;
    /// `old` is its base entry, if any.
    fn arrive(
        &mut self,
        have: Side,
        item: &Arc<Item>,
        view: View,
        id: &str,
        old: Option<BaseEntry>,
    ) {
        let fresh = Arc::new(self.fresh(have, view, item));
        let entry = BaseEntry::of(have, item, &fresh);
        let t = &mut self.tally;
        t.stats.added += 1;
        t.base_changed |= old.is_none_or(|b| b != entry);
        t.new_base.insert(id.to_string(), entry);
        t.appended[slot(have.other())].push(fresh);
    }
}

/// Joins two rounds of one sync: the second round's items and base, both
/// rounds' conflicts, and the original versions that either round displaced.
pub fn combine(first: MergeOutput, second: MergeOutput, id_field: &str) -> MergeOutput {
    // A version made by the first round was never on disk: the second
    // round's displaced versions count only for ids the first left alone.
    let seen: IdSet<(Side, String)> = first
        .displaced
        .iter()
        .map(|x| (x.side, id_of(&x.item, id_field).to_string()))
        .collect();
    let mut displaced = first.displaced;
    for d in second.displaced {
        if !seen.contains(&(d.side, id_of(&d.item, id_field).to_string())) {
            displaced.push(d);
        }
    }
    let mut conflicts = first.conflicts;
    conflicts.extend(second.conflicts);
    let conflicted: IdSet<&str> = conflicts.iter().map(|c| c.item_id.as_str()).collect();
    let stats = Stats {
        added: first.stats.added + second.stats.added,
        updated: first.stats.updated + second.stats.updated,
        deleted: first.stats.deleted + second.stats.deleted,
        unchanged: second.stats.unchanged,
        conflicts: conflicted.len(),
        merged: second.stats.merged,
    };
    MergeOutput {
        source_changed: first.source_changed || second.source_changed,
        target_changed: first.target_changed || second.target_changed,
        source_items: second.source_items,
        target_items: second.target_items,
        base: second.base,
        base_changed: first.base_changed || second.base_changed,
        again: second.again,
        stats,
        conflicts,
        displaced,
    }
}
