//! Property tests of the pure merge core (CONTRACT §4.1) over random bases,
//! edits and deletions on both sides, with a policy that withholds items of
//! category `private` and strips the field `secret` in both directions.

use cds_merge::{
    self as merge, Base, Direction, Item, MergeInput, MergeOutput, Options, Side, SideInput, View,
    content_eq,
};
use proptest::prelude::*;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// A scenario the merge refuses proves nothing about these properties: it is
/// rejected (as `prop_assume!` does), counted against the rejection budget.
fn accepted<T>(r: Result<T, merge::Refusal>) -> Result<T, TestCaseError> {
    r.map_err(|e| TestCaseError::reject(format!("the merge refused the scenario: {e}")))
}

const STAMP: &str = "2026-02-01T00:00:00Z";

/// What an item looks like on the other side.
fn view(item: &Item) -> Option<Item> {
    if item.get("category") == Some(&json!("private")) {
        return None;
    }
    let mut v = item.clone();
    v.shift_remove("secret");
    Some(v)
}

fn id(i: &Item) -> String {
    i["id"].as_str().unwrap().to_string()
}

#[derive(Clone, Debug)]
struct State {
    a: Vec<Item>,
    b: Vec<Item>,
    base: Base,
}

/// One sync, as the pipeline runs it: a second round when the first changed
/// an item its sender withheld.
fn run(s: &State, dir: Direction, opts: Options) -> Result<MergeOutput, cds_merge::Refusal> {
    let (first, again) = round(s, dir, opts)?;
    if !again {
        return Ok(first);
    }
    // The first round's items go on as they are, shared with its base.
    let (a, b) = (first.source_items.clone(), first.target_items.clone());
    let (second, _) = round_of(a, b, first.base.clone(), dir, opts, 0)?;
    Ok(merge::combine(first, second, "id"))
}

fn round(
    s: &State,
    dir: Direction,
    opts: Options,
) -> Result<(MergeOutput, bool), cds_merge::Refusal> {
    round_leaving_out(s, dir, opts, 0)
}

/// [`round`] of a state from which `settled` settled ids were left out.
fn round_leaving_out(
    s: &State,
    dir: Direction,
    opts: Options,
    settled_out: usize,
) -> Result<(MergeOutput, bool), cds_merge::Refusal> {
    round_of(
        shared(&s.a),
        shared(&s.b),
        s.base.clone(),
        dir,
        opts,
        settled_out,
    )
}

/// One merge round of these items and base.
fn round_of(
    a: Vec<Arc<Item>>,
    b: Vec<Arc<Item>>,
    base: Base,
    dir: Direction,
    opts: Options,
    settled_out: usize,
) -> Result<(MergeOutput, bool), cds_merge::Refusal> {
    let s = State {
        a: plain(&a),
        b: plain(&b),
        base,
    };
    // As the plugins report them: a view equal to its item is `Same`; as
    // the pipeline holds them: every other view of an item a patch of it,
    // the rest whole.
    let views = |items: &[Item], side: Side| -> Vec<View> {
        if dir.sends(side) {
            items
                .iter()
                .enumerate()
                .map(|(n, i)| match view(i) {
                    Some(v) if &v == i => View::Same,
                    Some(v) if n % 2 == 0 => View::of(i, v),
                    v => v.into(),
                })
                .collect()
        } else {
            Vec::new()
        }
    };
    // As the pipeline does: ids unchanged on both sides need no base view.
    let settled = merge::settled_ids(&s.a, &s.b, &s.base, "id");
    let base_views = |items: &[Item], side: Side| -> HashMap<String, Option<Item>> {
        merge::base_items_needing_views(items, &s.base, side, "id", &settled)
            .into_iter()
            .map(|b| (id(b), view(b)))
            .collect()
    };
    let (va, vb) = (views(&s.a, Side::Source), views(&s.b, Side::Target));
    let (ba, bb) = (
        base_views(&s.a, Side::Source),
        base_views(&s.b, Side::Target),
    );
    let input = MergeInput {
        source: SideInput {
            domain: "personal",
            items: a,
            views: va,
            base_views: &ba,
            normalized: &HashMap::new(),
        },
        target: SideInput {
            domain: "business",
            items: b,
            views: vb,
            base_views: &bb,
            normalized: &HashMap::new(),
        },
        base: s.base.clone(),
        direction: dir,
        options: opts,
        id_field: "id",
        synced_at: STAMP,
        settled_count: settled_out,
    };
    let out = merge::merge(input)?;
    let again = out.again;
    Ok((out, again))
}

fn apply(out: MergeOutput) -> State {
    State {
        a: plain(&out.source_items),
        b: plain(&out.target_items),
        base: out.base,
    }
}

fn item_strategy(id: String) -> impl Strategy<Value = Item> {
    (
        proptest::option::of(0..3i64),
        proptest::option::of(0..3i64),
        proptest::option::of("[xy]{1}"),
        prop_oneof![3 => Just("business"), 1 => Just("private")],
        0..5u32,
    )
        .prop_map(move |(a, b, secret, cat, day)| {
            let mut m = Item::new();
            m.insert("id".into(), json!(id));
            m.insert(
                "lastModified".into(),
                json!(format!("2026-01-0{}T00:00:00Z", day + 1)),
            );
            m.insert("category".into(), json!(cat));
            if let Some(a) = a {
                m.insert("a".into(), json!(a));
            }
            if let Some(b) = b {
                m.insert("b".into(), json!(b));
            }
            if let Some(s) = secret {
                m.insert("secret".into(), json!(s));
            }
            m
        })
}

fn side_strategy() -> impl Strategy<Value = Vec<Item>> {
    proptest::collection::btree_set(0..8u8, 0..7).prop_flat_map(|ids| {
        ids.into_iter()
            .map(|i| item_strategy(format!("i{i}")))
            .collect::<Vec<_>>()
    })
}

#[derive(Clone, Debug)]
enum Edit {
    Set(usize, &'static str, Value),
    Remove(usize, &'static str),
    Delete(usize),
    Add(u8),
}

fn edits() -> impl Strategy<Value = Vec<Edit>> {
    let field = prop_oneof![Just("a"), Just("b"), Just("secret"), Just("category")];
    let value = prop_oneof![
        (0..3i64).prop_map(|v| json!(v)),
        Just(json!("private")),
        Just(json!("business"))
    ];
    let edit = prop_oneof![
        3 => (0..8usize, field.clone(), value).prop_map(|(i, f, v)| Edit::Set(i, f, v)),
        1 => (0..8usize, field).prop_map(|(i, f)| Edit::Remove(i, f)),
        1 => (0..8usize).prop_map(Edit::Delete),
        1 => (8..12u8).prop_map(Edit::Add),
    ];
    proptest::collection::vec(edit, 0..5)
}

fn edit(items: &mut Vec<Item>, edits: &[Edit], side: &str) {
    for e in edits {
        let n = items.len();
        match e {
            Edit::Set(i, f, v) if n > 0 => {
                let it = &mut items[i % n];
                it.insert((*f).into(), v.clone());
                it.insert("lastModified".into(), json!("2026-01-20T00:00:00Z"));
            }
            Edit::Remove(i, f) if n > 0 => {
                items[i % n].shift_remove(*f);
            }
            Edit::Delete(i) if n > 0 => {
                items.remove(i % n);
            }
            Edit::Add(k) => {
                let new_id = format!("{side}-new{k}");
                if !items.iter().any(|i| id(i) == new_id) {
                    let mut m = Item::new();
                    m.insert("id".into(), json!(new_id));
                    m.insert("lastModified".into(), json!("2026-01-21T00:00:00Z"));
                    m.insert("a".into(), json!(*k as i64));
                    items.push(m);
                }
            }
            _ => {}
        }
    }
}

fn direction() -> impl Strategy<Value = Direction> {
    prop_oneof![
        Just(Direction::Bidirectional),
        Just(Direction::SourceToTarget),
        Just(Direction::TargetToSource)
    ]
}

const FREE: Options = Options {
    no_delete: false,
    allow_mass_delete: true,
};

/// A synced pair, then edits on both sides since.
fn scenario() -> impl Strategy<Value = (State, Direction, Direction)> {
    (
        side_strategy(),
        side_strategy(),
        direction(),
        edits(),
        edits(),
        direction(),
    )
        .prop_map(|(a, b, d1, ea, eb, d2)| {
            let first = run(
                &State {
                    a,
                    b,
                    base: Base::new(),
                },
                d1,
                FREE,
            )
            .expect("first sync");
            let mut s = apply(first);
            edit(&mut s.a, &ea, "a");
            edit(&mut s.b, &eb, "b");
            (s, d1, d2)
        })
}

fn ids<I: std::borrow::Borrow<Item>>(items: &[I]) -> Vec<String> {
    items.iter().map(|i| id(i.borrow())).collect()
}

/// The merge's items (shared with its base) as plain items.
fn plain(items: &[Arc<Item>]) -> Vec<Item> {
    items.iter().map(|i| Item::clone(i)).collect()
}

/// Items as the merge takes them.
fn shared(items: &[Item]) -> Vec<Arc<Item>> {
    items.iter().cloned().map(Arc::new).collect()
}

fn without_meta(i: &Item) -> BTreeMap<String, Value> {
    i.iter()
        .filter(|(k, _)| !matches!(k.as_str(), "syncedAt" | "syncDirection" | "lastModified"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

proptest! {
    // A refused scenario is rejected (see `accepted`), not counted as a pass;
    // a generator that drifted into refusals exhausts this budget and fails.
    #![proptest_config(ProptestConfig { cases: 400, max_global_rejects: 40, ..ProptestConfig::default() })]

    /// Leaving settled ids out of the merge (as the pipeline does for items
    /// whose text the base knows) and counting them instead gives the same
    /// merge: the same items once they are put back where they were, the
    /// same base with their entries, the same counts and conflicts, the same
    /// guard-rail refusals.
    #[test]
    fn settled_ids_left_out_change_nothing(
        (s, _d1, d2) in scenario(),
        pick in proptest::collection::vec(any::<bool>(), 16),
        guarded in any::<bool>(),
    ) {
        let opts = if guarded { Options::default() } else { FREE };
        let settled = merge::settled_ids(&s.a, &s.b, &s.base, "id");
        let left_out: Vec<String> = ids(&s.a)
            .into_iter()
            .enumerate()
            .filter(|(i, x)| settled.contains(x.as_str()) && pick[*i % pick.len()])
            .map(|(_, x)| x)
            .collect();
        let out_of = |items: &[Item]| -> Vec<Item> {
            items.iter().filter(|i| !left_out.contains(&id(i))).cloned().collect()
        };
        let reduced = State {
            a: out_of(&s.a),
            b: out_of(&s.b),
            base: s.base.iter().filter(|(k, _)| !left_out.contains(k)).map(|(k, v)| (k.clone(), v.clone())).collect(),
        };
        let full = round(&s, d2, opts);
        let part = round_leaving_out(&reduced, d2, opts, left_out.len());
        let (full, part) = match (full, part) {
            (Err(a), Err(b)) => {
                prop_assert_eq!(a, b);
                return Ok(());
            }
            (Ok((a, _)), Ok((b, _))) => (a, b),
            (a, b) => {
                prop_assert!(false, "one refused, the other not: {:?} / {:?}", a.err(), b.err());
                unreachable!()
            }
        };
        // Put the left-out items back where they were.
        let put_back = |before: &[Item], after: &[Item]| -> Vec<Item> {
            let mut next = 0;
            let mut out = Vec::new();
            for it in before {
                if left_out.contains(&id(it)) {
                    out.push(it.clone());
                } else if after.get(next).is_some_and(|a| id(a) == id(it)) {
                    out.push(after[next].clone());
                    next += 1;
                }
            }
            out.extend(after[next..].iter().cloned());
            out
        };
        prop_assert_eq!(put_back(&s.a, &plain(&part.source_items)), plain(&full.source_items));
        prop_assert_eq!(put_back(&s.b, &plain(&part.target_items)), plain(&full.target_items));
        let mut base = part.base.clone();
        for k in &left_out {
            base.insert(k.clone(), s.base[k].clone());
        }
        prop_assert_eq!(base, full.base);
        prop_assert_eq!(part.stats, full.stats);
        prop_assert_eq!(part.conflicts, full.conflicts);
        prop_assert_eq!((part.source_changed, part.target_changed), (full.source_changed, full.target_changed));
        prop_assert_eq!(part.again, full.again);
    }

    /// Running the same sync twice in a row changes nothing the second time.
    #[test]
    fn a_second_identical_sync_changes_nothing((s, _d1, d2) in scenario()) {
        let out = accepted(run(&s, d2, FREE))?;
        let s2 = apply(out);
        let again = run(&s2, d2, FREE).expect("second sync");
        prop_assert!(!again.source_changed && !again.target_changed,
            "second sync changed something: {:?}", again.stats);
        prop_assert_eq!(again.stats.added + again.stats.updated + again.stats.deleted, 0);
        prop_assert!(again.conflicts.is_empty());
        // The base may still record what the first sync made visible (an
        // item it un-withheld); from then on not even the base changes.
        let s3 = apply(again);
        let third = run(&s3, d2, FREE).expect("third sync");
        prop_assert!(!third.source_changed && !third.target_changed);
        prop_assert_eq!(&third.base, &s3.base);
    }

    /// The merge's own flags are sound: a base that differs from the input's
    /// is reported as changed (else the pipeline would not write it), and
    /// `again` holds exactly when a sending side's withheld item changed.
    #[test]
    fn base_changed_and_again_tell_the_truth((s, _d1, d2) in scenario()) {
        let (out, again) = accepted(round(&s, d2, FREE))?;
        if out.base != s.base {
            prop_assert!(out.base_changed, "the base changed unreported");
        }
        let withheld_changed = [(Side::Source, &s.a, &out.source_items), (Side::Target, &s.b, &out.target_items)]
            .into_iter()
            .filter(|(side, _, _)| d2.sends(*side))
            .any(|(_, before, after)| {
                before.iter().filter(|i| view(i).is_none()).any(|old| {
                    after.iter().any(|n| id(n) == id(old) && !content_eq(n, old))
                })
            });
        prop_assert_eq!(again, withheld_changed);
    }

    /// After a bidirectional sync both sides hold the same items, up to what
    /// the policy withholds or strips.
    #[test]
    fn bidirectional_sides_agree_up_to_policy((s, _d1, _d2) in scenario()) {
        let out = run(&s, Direction::Bidirectional, FREE).expect("sync");
        let s2 = apply(out);
        let bmap: HashMap<String, &Item> = s2.b.iter().map(|i| (id(i), i)).collect();
        let amap: HashMap<String, &Item> = s2.a.iter().map(|i| (id(i), i)).collect();
        for (side_items, other, name) in [(&s2.a, &bmap, "source"), (&s2.b, &amap, "target")] {
            for it in side_items.iter() {
                let Some(v) = view(it) else { continue };
                let Some(o) = other.get(&id(it)) else {
                    return Err(TestCaseError::fail(format!("{name} item {} is missing on the other side", id(it))));
                };
                if view(o).is_none() { continue; }
                let mut mine = without_meta(&v);
                let mut theirs = without_meta(&view(o).unwrap());
                mine.remove("secret");
                theirs.remove("secret");
                prop_assert_eq!(mine, theirs, "item {} differs", id(it));
            }
        }
    }

    /// Every value a sync overwrites or deletes is kept: the old item is in
    /// the displaced versions (which go to backups), and every overwritten
    /// field value of a conflict is in the conflict log.
    #[test]
    fn nothing_is_lost((s, _d1, d2) in scenario()) {
        let out = accepted(run(&s, d2, FREE))?;
        for (before, after, side) in [(&s.a, &out.source_items, Side::Source), (&s.b, &out.target_items, Side::Target)] {
            for old in before.iter() {
                let kept = after.iter().any(|n| **n == *old);
                let displaced = out.displaced.iter().any(|d| d.side == side && *d.item == *old);
                prop_assert!(kept || displaced, "{:?} item {} vanished", side, id(old));
            }
        }
        for c in &out.conflicts {
            match &c.field {
                // A field conflict logs the value that lost (or the winner's).
                Some(_) => prop_assert!(c.source_value.is_some() || c.target_value.is_some()),
                // A change against a deletion logs only what crossed; the
                // changed item itself is kept on the side that changed it.
                None => prop_assert!(
                    ids(&out.source_items).contains(&c.item_id) || ids(&out.target_items).contains(&c.item_id),
                    "{} lost", c.item_id
                ),
            }
        }
    }

    /// A→B→A keeps every field of A, stripped and withheld ones included.
    #[test]
    fn a_round_trip_keeps_every_field_of_a(a in side_strategy(), b in side_strategy()) {
        // B's own items have other ids (an id both sides hold independently
        // is a first-sync conflict, not a round trip).
        let b: Vec<Item> = b.into_iter().map(|mut i| {
            let new_id = format!("b-{}", id(&i));
            i.insert("id".into(), json!(new_id));
            i
        }).collect();
        let s = State { a: a.clone(), b, base: Base::new() };
        let there = apply(run(&s, Direction::SourceToTarget, FREE).expect("A->B"));
        let back = apply(run(&there, Direction::TargetToSource, FREE).expect("B->A"));
        for orig in &a {
            let now = back.a.iter().find(|i| id(i) == id(orig));
            prop_assert!(now.is_some(), "{} lost", id(orig));
            let now = now.unwrap();
            for (k, v) in orig {
                if k == "lastModified" { continue; }
                prop_assert_eq!(now.get(k), Some(v), "field {} of {} changed", k, id(orig));
            }
        }
    }

    /// An item withheld by policy is never deleted because it is missing on
    /// the other side.
    #[test]
    fn a_withheld_item_is_never_deleted((s, _d1, d2) in scenario()) {
        let out = accepted(run(&s, d2, FREE))?;
        for (before, after) in [(&s.a, &out.source_items), (&s.b, &out.target_items)] {
            for it in before.iter().filter(|i| view(i).is_none()) {
                if s.base.contains_key(&id(it)) { continue; }
                prop_assert!(ids(after).contains(&id(it)), "withheld {} deleted", id(it));
            }
        }
    }

    /// The new base holds no copies: where its entry for a side is that
    /// side's new item in content, it is the same allocation (what lets the
    /// pipeline check it, and keeps a first sync's memory down).
    #[test]
    fn the_base_shares_the_items_it_holds((s, _d1, d2) in scenario(), first in any::<bool>()) {
        let s = if first { State { base: Base::new(), ..s } } else { s };
        let out = accepted(run(&s, d2, FREE))?;
        for (side, items) in [(Side::Source, &out.source_items), (Side::Target, &out.target_items)] {
            for it in items {
                let Some(e) = out.base.get(&id(it)) else { continue };
                let held = match side { Side::Source => &e.source, Side::Target => &e.target };
                // Entries the merge left as they were (settled) come from
                // the old base; only those it made must share.
                if s.base.get(&id(it)).is_some_and(|old| old == e) {
                    continue;
                }
                if content_eq(held, it) {
                    prop_assert!(Arc::ptr_eq(held, it), "{:?} {} is a copy", side, id(it));
                }
            }
        }
    }

    /// Without a base (first sync, or lost state) nothing is deleted.
    #[test]
    fn without_a_base_nothing_is_deleted(a in side_strategy(), b in side_strategy(), d in direction()) {
        let s = State { a: a.clone(), b: b.clone(), base: Base::new() };
        let out = run(&s, d, FREE).expect("sync");
        prop_assert_eq!(out.stats.deleted, 0);
        for (before, after) in [(&a, &out.source_items), (&b, &out.target_items)] {
            for i in before { prop_assert!(ids(after).contains(&id(i))); }
        }
    }

    /// One-way syncs write only the receiving side.
    #[test]
    fn one_way_writes_only_the_receiver((s, _d1, _d2) in scenario(), to_target in any::<bool>()) {
        let d = if to_target { Direction::SourceToTarget } else { Direction::TargetToSource };
        let out = accepted(run(&s, d, FREE))?;
        if to_target {
            prop_assert!(!out.source_changed);
            prop_assert_eq!(&plain(&out.source_items), &s.a);
        } else {
            prop_assert!(!out.target_changed);
            prop_assert_eq!(&plain(&out.target_items), &s.b);
        }
    }
}

#[test]
fn a_withheld_item_that_a_sync_makes_visible_crosses_in_that_sync() {
    let item = |v: Value| v.as_object().unwrap().clone();
    // Both sides know `x`; the target's copy is private (withheld) and has a
    // field the source never saw. The source wins the category conflict.
    let s = State {
        a: vec![item(
            json!({"id": "x", "lastModified": "2026-01-01T00:00:00Z", "category": "business"}),
        )],
        b: vec![item(
            json!({"id": "x", "lastModified": "2026-01-01T00:00:00Z", "category": "private", "b": 1}),
        )],
        base: Base::new(),
    };
    let (first, again) = round(&s, Direction::Bidirectional, FREE).unwrap();
    assert!(again, "the first round un-withheld the target's copy");
    assert_eq!(first.target_items[0]["category"], json!("business"));
    assert_eq!(first.source_items[0].get("b"), None, "not yet crossed");
    let s1 = apply(run(&s, Direction::Bidirectional, FREE).unwrap());
    assert_eq!(
        s1.a[0].get("b"),
        Some(&json!(1)),
        "the field crossed in the same sync"
    );
    let again = run(&s1, Direction::Bidirectional, FREE).unwrap();
    assert!(!again.source_changed && !again.target_changed);
}

/// The mass-deletion guard counts settled ids that were left out as base
/// entries: 12 deletions of 24 synced items is allowed (not more than half)
/// whether or not 8 of the other 12 are left out, and 13 is refused.
#[test]
fn the_guard_counts_settled_ids_left_out() {
    let it = |i: usize| {
        json!({"id": format!("i{i:02}"), "lastModified": "2026-01-01T00:00:00Z", "a": 1})
            .as_object()
            .unwrap()
            .clone()
    };
    let all: Vec<Item> = (0..24).map(it).collect();
    let synced = apply(
        run(
            &State {
                a: all.clone(),
                b: all.clone(),
                base: Base::new(),
            },
            Direction::Bidirectional,
            FREE,
        )
        .unwrap(),
    );
    let guarded = Options::default();
    for (deleted, refused) in [(12, false), (13, true)] {
        let mut s = synced.clone();
        s.a.drain(..deleted);
        let whole = round(&s, Direction::Bidirectional, guarded);
        assert_eq!(whole.is_err(), refused, "{deleted} of 24, nothing left out");
        // Leave out 8 of the ids still on both sides, as settled.
        let out: Vec<String> = ids(&s.a).into_iter().take(8).collect();
        let keep = |v: &[Item]| -> Vec<Item> {
            v.iter()
                .filter(|i| !out.contains(&id(i)))
                .cloned()
                .collect()
        };
        let reduced = State {
            a: keep(&s.a),
            b: keep(&s.b),
            base: s
                .base
                .iter()
                .filter(|(k, _)| !out.contains(k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        };
        let part = round_leaving_out(&reduced, Direction::Bidirectional, guarded, 8);
        assert_eq!(part.is_err(), refused, "{deleted} of 24, 8 left out");
        if let Ok((out, _)) = part {
            assert_eq!(out.stats.deleted, deleted);
            assert_eq!(out.stats.unchanged, 24 - deleted);
            assert_eq!(out.stats.merged, 24 - deleted);
        }
    }
}

/// In a first sync both ways, the base holds each side's new items
/// themselves, the copied ones and the ones already there alike.
#[test]
fn a_first_sync_shares_every_item_with_its_base() {
    let it = |id: &str| {
        json!({"id": id, "lastModified": "2026-01-01T00:00:00Z", "a": 1})
            .as_object()
            .unwrap()
            .clone()
    };
    let s = State {
        a: vec![it("x"), it("y")],
        b: vec![it("y"), it("z")],
        base: Base::new(),
    };
    let out = run(&s, Direction::Bidirectional, FREE).unwrap();
    assert_eq!((out.source_items.len(), out.target_items.len()), (3, 3));
    for (items, side) in [
        (&out.source_items, Side::Source),
        (&out.target_items, Side::Target),
    ] {
        for i in items {
            let e = &out.base[&id(i)];
            let held = if side == Side::Source {
                &e.source
            } else {
                &e.target
            };
            assert!(Arc::ptr_eq(held, i), "{side:?} {}", id(i));
        }
    }
}

/// What the receiving side has normalised: only items where that can
/// matter. Without a base entry, a field the view lacks (stripped) is no
/// reason; a field it holds with another value, or that the receiver lacks,
/// is. With a base entry any difference is.
#[test]
fn normalisation_is_asked_for_where_it_can_matter() {
    let it = |v: Value| Arc::new(v.as_object().unwrap().clone());
    let sender = vec![
        it(json!({"id": "stripped", "a": 1})),
        it(json!({"id": "written", "a": "+15550100"})),
        it(json!({"id": "added", "a": 1, "b": 2})),
        it(json!({"id": "meta", "a": 1, "lastModified": "2026-01-02T00:00:00Z"})),
    ];
    let receiver = vec![
        it(json!({"id": "stripped", "a": 1, "secret": "s"})),
        it(json!({"id": "written", "a": "+1-555-0100"})),
        it(json!({"id": "added", "a": 1})),
        it(json!({"id": "meta", "a": 1, "lastModified": "2026-01-01T00:00:00Z"})),
    ];
    let views = vec![View::Same; sender.len()];
    let asked = |base: &Base| -> Vec<String> {
        merge::items_needing_normalization(&receiver, &sender, &views, "id", base)
            .into_iter()
            .map(id)
            .collect()
    };
    assert_eq!(asked(&Base::new()), ["written", "added"]);
    let base: Base = receiver
        .iter()
        .map(|r| (id(r), merge::BaseEntry::same(Item::clone(r))))
        .collect();
    assert_eq!(asked(&base), ["stripped", "written", "added"]);
}

/// An item that arrives keeps its fields in their order, without a stale
/// stamp of another sync, and ends with this sync's stamps; an item that
/// is updated keeps its order, gains the fields it lacked, then the stamps.
#[test]
fn the_stamps_come_last() {
    let it = |v: Value| v.as_object().unwrap().clone();
    let s = State {
        a: vec![
            it(
                json!({"id": "new", "syncedAt": "2020-01-01T00:00:00Z", "a": 1,
                      "syncDirection": "x->y", "lastModified": "2026-01-01T00:00:00Z"}),
            ),
            it(json!({"id": "both", "a": 1, "lastModified": "2026-01-01T00:00:00Z"})),
        ],
        b: vec![it(
            json!({"id": "both", "lastModified": "2026-01-01T00:00:00Z", "b": 2}),
        )],
        base: Base::new(),
    };
    let out = run(&s, Direction::Bidirectional, FREE).unwrap();
    let keys = |i: &Item| i.keys().cloned().collect::<Vec<_>>();
    let at =
        |items: &[Arc<Item>], want: &str| items.iter().find(|i| id(i) == want).unwrap().clone();
    let arrived = at(&out.target_items, "new");
    assert_eq!(
        keys(&arrived),
        ["id", "a", "lastModified", "syncedAt", "syncDirection"]
    );
    assert_ne!(arrived["syncedAt"], json!("2020-01-01T00:00:00Z"));
    assert_ne!(arrived["syncDirection"], json!("x->y"));
    assert_eq!(
        keys(&at(&out.target_items, "both")),
        ["id", "lastModified", "b", "a", "syncedAt", "syncDirection"]
    );
    assert_eq!(
        keys(&at(&out.source_items, "both")),
        ["id", "a", "lastModified", "b", "syncedAt", "syncDirection"]
    );
}

#[test]
fn only_a_change_on_both_sides_is_a_conflict() {
    let it = |a: i64, b: i64| {
        json!({"id": "x", "lastModified": "2026-01-01T00:00:00Z", "a": a, "b": b})
            .as_object()
            .unwrap()
            .clone()
    };
    let s = State {
        a: vec![it(0, 0)],
        b: vec![],
        base: Base::new(),
    };
    let mut s = apply(run(&s, Direction::Bidirectional, FREE).unwrap());
    // Source changes `a`, target changes `b`: both travel, no conflict.
    s.a[0].insert("a".into(), json!(1));
    s.b[0].insert("b".into(), json!(2));
    let out = run(&s, Direction::Bidirectional, FREE).unwrap();
    assert!(out.conflicts.is_empty(), "{:?}", out.conflicts);
    assert!(content_eq(&out.source_items[0], &it(1, 2)));
    assert!(content_eq(&out.target_items[0], &it(1, 2)));
    // Both change `a`: a conflict, the source wins, the loser is logged.
    let mut s = apply(out);
    s.a[0].insert("a".into(), json!(5));
    s.b[0].insert("a".into(), json!(6));
    let out = run(&s, Direction::Bidirectional, FREE).unwrap();
    assert_eq!(out.conflicts.len(), 1);
    assert_eq!(out.conflicts[0].target_value, Some(json!(6)));
    assert_eq!(out.target_items[0]["a"], json!(5));
}

#[test]
fn a_change_beats_a_deletion() {
    let it = |a: i64| {
        json!({"id": "x", "lastModified": "2026-01-01T00:00:00Z", "a": a})
            .as_object()
            .unwrap()
            .clone()
    };
    let s = apply(
        run(
            &State {
                a: vec![it(0)],
                b: vec![],
                base: Base::new(),
            },
            Direction::Bidirectional,
            FREE,
        )
        .unwrap(),
    );
    let mut changed = s.clone();
    changed.a[0].insert("a".into(), json!(9));
    changed.b.clear();
    let out = run(&changed, Direction::Bidirectional, FREE).unwrap();
    assert_eq!(out.target_items.len(), 1, "copied back");
    assert_eq!(out.conflicts.len(), 1);
    assert_eq!(out.conflicts[0].field, None);
    // Unchanged: the deletion is carried over.
    let mut deleted = s.clone();
    deleted.b.clear();
    let out = run(&deleted, Direction::Bidirectional, FREE).unwrap();
    assert!(out.source_items.is_empty());
    assert_eq!(out.stats.deleted, 1);
    assert!(
        out.displaced
            .iter()
            .any(|d| d.deleted && d.side == Side::Source)
    );
}

/// A small JSON value whose objects have few, clashing keys.
fn small_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (0..3i64).prop_map(|n| json!(n)),
        Just(json!(1.0)),
        "[xy]{0,2}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
            proptest::collection::vec(("[abc]", inner), 0..4)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// An item with content fields and, sometimes, the bookkeeping fields.
fn small_item() -> impl Strategy<Value = Item> {
    proptest::collection::vec(
        (
            prop_oneof![
                "[abcd]",
                Just(merge::SYNCED_AT.to_string()),
                Just(merge::LAST_MODIFIED.to_string()),
                Just(merge::SYNC_DIRECTION.to_string()),
            ],
            small_value(),
        ),
        0..6,
    )
    .prop_map(|kv| kv.into_iter().collect())
}

/// `content_eq` by its definition: equal after dropping the bookkeeping
/// fields, whatever the order of keys at any depth.
fn content_eq_reference(a: &Item, b: &Item) -> bool {
    let strip = |m: &Item| -> Value {
        Value::Object(
            m.iter()
                .filter(|(k, _)| {
                    ![
                        merge::SYNCED_AT,
                        merge::LAST_MODIFIED,
                        merge::SYNC_DIRECTION,
                    ]
                    .contains(&k.as_str())
                })
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        )
    };
    strip(a) == strip(b)
}

/// The same value with every object's keys in reverse order.
fn reversed(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .rev()
                .map(|(k, v)| (k.clone(), reversed(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(reversed).collect()),
        v => v.clone(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// `content_eq`'s in-order fast path gives the answer the definition
    /// gives, for items in the same key order, in another order, and unlike.
    #[test]
    fn content_eq_agrees_with_its_definition(a in small_item(), b in small_item(), flip in any::<bool>()) {
        let r = |i: &Item| match reversed(&Value::Object(i.clone())) {
            Value::Object(m) => m,
            _ => unreachable!(),
        };
        let a2 = if flip { r(&a) } else { a.clone() };
        prop_assert!(content_eq(&a, &a2));
        prop_assert!(content_eq(&a2, &a));
        prop_assert_eq!(content_eq(&a, &b), content_eq_reference(&a, &b));
        prop_assert_eq!(content_eq(&a2, &b), content_eq_reference(&a2, &b));
        prop_assert_eq!(content_eq(&b, &a2), content_eq_reference(&b, &a2));
    }
}

/// A map's text, to compare key order at every depth as well as content.
fn entries(m: &Item) -> String {
    serde_json::to_string(m).unwrap()
}

/// A view made from `item`: some fields left out, some values replaced,
/// sometimes a field added or two swapped (which no patch can express).
fn view_of_item() -> impl Strategy<Value = (Item, Item)> {
    (
        small_item(),
        proptest::collection::vec((0..4u8, small_value()), 6),
        0..4u8,
    )
        .prop_map(|(item, edits, shape)| {
            let mut view = Item::new();
            for ((k, v), (edit, new)) in item.iter().zip(edits) {
                match edit {
                    0 => {}
                    1 => {
                        view.insert(k.clone(), new);
                    }
                    // The same value, its objects' keys in another order.
                    2 => {
                        view.insert(k.clone(), reversed(v));
                    }
                    _ => {
                        view.insert(k.clone(), v.clone());
                    }
                }
            }
            match shape {
                0 => {
                    view.insert("added".into(), json!(1));
                }
                1 if view.len() >= 2 => {
                    let mut e: Vec<_> = view.into_iter().collect();
                    e.swap(0, 1);
                    view = e.into_iter().collect();
                }
                _ => {}
            }
            (item, view)
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// A view held as a patch of its item gives back exactly that view, its
    /// keys in the same order; a view equal to its item is `Same`.
    #[test]
    fn a_view_held_as_a_patch_is_the_view((item, view) in view_of_item()) {
        let held = View::of(&item, view.clone());
        let back = held.resolve(&item).expect("not withheld");
        prop_assert_eq!(entries(&back), entries(&view));
        prop_assert_eq!(entries(&held.clone().into_item(&item).unwrap()), entries(&view));
        if entries(&view) == entries(&item) {
            prop_assert_eq!(held, View::Same);
        }
    }
}
