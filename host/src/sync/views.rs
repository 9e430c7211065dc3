//! The views-and-merge stage of one entity type: each sending side's items
//! mapped and filtered by the sandboxed plugin into what the other side
//! receives (its views), and the pure merge run on them.
//!
//! A round makes the views and merges once; when the merge changed an item
//! its sender withheld, that item may cross now, so a second round runs and
//! the two are combined ([`cds_merge::combine`]).

use super::Deadline;
use super::read::Fields;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::merge::{self, Base, IdSet, Item, MergeOutput, Side, View, id_of};
use crate::plugin::runtime::Runtime;
use crate::plugin::{Plugin, Shapes};
use crate::request::{Domain, SyncRequest};
use cds_policy::Policy;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What every round of one entity type shares.
pub struct Round<'a> {
    pub config: &'a Config,
    pub runtime: &'a Runtime,
    pub req: &'a SyncRequest,
    pub plugin: &'a Plugin,
    pub entity: &'a str,
    /// Source's and target's field renames.
    pub fields: [&'a Fields; 2],
    /// How many ids were settled and left out (see [`merge::MergeInput`]).
    pub settled_count: usize,
    /// The sync's time, written into the items it changes.
    pub synced_at: &'a str,
    pub deadline: &'a Deadline<'a>,
}

/// The merge's output, with the policy's withheld-item and redacted-field
/// counts.
pub struct Merged {
    pub out: MergeOutput,
    pub withheld: usize,
    pub redacted: u64,
}

/// Views and merge, with a second round when the first asks for one. The
/// items and the base move in and come back in the output.
pub fn views_and_merge(
    round: &Round<'_>,
    items: [Vec<Arc<Item>>; 2],
    base: Base,
) -> Result<Merged> {
    let mut first = merge_round(round, items, base)?;
    if !first.out.again {
        return Ok(first);
    }
    let items = [
        std::mem::take(&mut first.out.source_items),
        std::mem::take(&mut first.out.target_items),
    ];
    let base = std::mem::take(&mut first.out.base);
    let second = merge_round(round, items, base)?;
    Ok(Merged {
        out: merge::combine(first.out, second.out, round.plugin.id_field()),
        withheld: first.withheld,
        redacted: first.redacted,
    })
}

/// What one sending side's views come to.
#[derive(Default)]
struct SideViews {
    /// Aligned with the side's items; settled items get none (`Withheld`,
    /// which the merge does not look at for them).
    views: Vec<View>,
    /// The receiving side's items that differ from what arrives, normalised
    /// in their own shape, by id (see [`merge::SideInput::normalized`]).
    normalized: HashMap<String, Item>,
    /// The views of the base items of ids this side changed.
    base_views: HashMap<String, Option<Item>>,
    withheld: usize,
    redacted: u64,
}

/// One round of views (plugins) and merge (pure).
fn merge_round(round: &Round<'_>, items: [Vec<Arc<Item>>; 2], base: Base) -> Result<Merged> {
    let idf = round.plugin.id_field();
    let mut timings = StageTimer::new();
    // Items unchanged on both sides since the base need no view.
    let settled_ids = merge::settled_ids(&items[0], &items[1], &base, idf);
    let mut made = [SideViews::default(), SideViews::default()];
    for side in [Side::Source, Side::Target] {
        if !round.req.direction.sends(side) || round.deadline.passed() {
            continue;
        }
        made[side as usize] = side_views(round, side, &items, &base, &settled_ids, &mut timings)?;
    }
    let withheld = made.iter().map(|m| m.withheld).sum();
    let redacted = made.iter().map(|m| m.redacted).sum();
    let [src_made, tgt_made] = made;
    let [src_items, tgt_items] = items;
    let input = merge::MergeInput {
        source: merge::SideInput {
            domain: &round.req.source.name,
            items: src_items,
            views: src_made.views,
            base_views: &src_made.base_views,
            // Normalised by the other side's round: target's items as
            // source sends to them, and the other way round.
            normalized: &tgt_made.normalized,
        },
        target: merge::SideInput {
            domain: &round.req.target.name,
            items: tgt_items,
            views: tgt_made.views,
            base_views: &tgt_made.base_views,
            normalized: &src_made.normalized,
        },
        base,
        direction: round.req.direction,
        options: merge::Options {
            no_delete: round.req.no_delete,
            allow_mass_delete: round.req.allow_mass_delete,
        },
        id_field: idf,
        synced_at: round.synced_at,
        settled_count: round.settled_count,
    };
    let out = merge::merge(input).map_err(|e| Error::from(e).with("entity", round.entity))?;
    timings.lap("merge");
    tracing::debug!(entity = round.entity, "merge round: {}", timings.summary());
    Ok(Merged {
        out,
        withheld,
        redacted,
    })
}

/// The views `side` sends: its unsettled items as the other side receives
/// them, the other side's items normalised where they differ from what
/// arrives, and the views of the base items of ids `side` changed.
fn side_views(
    round: &Round<'_>,
    side: Side,
    items: &[Vec<Arc<Item>>; 2],
    base: &Base,
    settled_ids: &IdSet<&str>,
    timings: &mut StageTimer,
) -> Result<SideViews> {
    let idf = round.plugin.id_field();
    let (from, to): (&Domain, &Domain) = match side {
        Side::Source => (&round.req.source, &round.req.target),
        Side::Target => (&round.req.target, &round.req.source),
    };
    let (mine, theirs) = (&items[side as usize], &items[side.other() as usize]);
    let (from_fields, to_fields) = (
        round.fields[side as usize],
        round.fields[side.other() as usize],
    );
    // The policy names canonical fields; the views are in the receiving
    // domain's names.
    let canonical = round.config.policy(&from.name, &to.name, round.entity);
    let omit = round.plugin.omittable(&canonical, from_fields);
    let omit: Vec<&str> = omit.iter().map(String::as_str).collect();
    let policy = crate::config::in_local_names(&canonical, to_fields);
    let shapes = Shapes {
        from_domain: &from.name,
        to_domain: &to.name,
        from_fields,
        to_fields,
    };
    let open: Vec<usize> = (0..mine.len())
        .filter(|&i| !settled_ids.contains(id_of(&mine[i], idf)))
        .collect();
    let refs: Vec<&Item> = open.iter().map(|&i| &*mine[i]).collect();
    timings.lap("prepare");
    let crossed =
        round
            .plugin
            .map_filter_omitting(round.runtime, &shapes, Some(&policy), &omit, &refs)?;
    timings.lap("views");
    let mut made = SideViews {
        views: vec![View::Withheld; mine.len()],
        withheld: crossed.withheld,
        redacted: crossed.redacted_fields,
        ..SideViews::default()
    };
    for (i, v) in open.into_iter().zip(crossed.items) {
        made.views[i] = v;
    }
    as_patches(&mut made.views, mine, theirs, base, idf);
    let differ = merge::items_needing_normalization(theirs, mine, &made.views, idf, base);
    timings.lap("align");
    if !differ.is_empty() {
        // What this side's policy strips is in no view, so no merge step
        // compares it: the receiving side's items need not send it either.
        let unseen = round.plugin.omittable(
            &Policy {
                strip: canonical.strip.clone(),
                ..Policy::default()
            },
            to_fields,
        );
        let unseen: Vec<&str> = unseen.iter().map(String::as_str).collect();
        made.normalized = normalized(round, to, to_fields, &differ, &unseen)?;
        timings.lap("normalize");
    }
    let needing = merge::base_items_needing_views(mine, base, side, idf, settled_ids);
    if !needing.is_empty() {
        let crossed = round.plugin.map_filter_omitting(
            round.runtime,
            &shapes,
            Some(&policy),
            &omit,
            &needing,
        )?;
        made.base_views = needing
            .iter()
            .zip(crossed.items)
            .map(|(b, v)| (id_of(b, idf).to_string(), v.into_item(b)))
            .collect();
        timings.lap("base views");
    }
    Ok(made)
}

/// A view of an id the other side or the base holds only feeds the merge's
/// comparisons: held as a patch of its item, it costs the fields it changes
/// instead of a second copy of the item (BENCHMARKS.md, "Views as patches").
/// A view of an id new to the other side becomes that side's item, and
/// stays whole.
fn as_patches(
    views: &mut [View],
    mine: &[Arc<Item>],
    theirs: &[Arc<Item>],
    base: &Base,
    idf: &str,
) {
    let held: IdSet<&str> = theirs.iter().map(|t| id_of(t, idf)).collect();
    for (view, item) in views.iter_mut().zip(mine) {
        let id = id_of(item, idf);
        // Only a whole view is taken: taking another would leave it withheld.
        if matches!(view, View::Item(_))
            && (held.contains(id) || base.contains_key(id))
            && let View::Item(v) = std::mem::take(view)
        {
            *view = View::of(item, v);
        }
    }
}

/// The receiving side's items that differ from what arrives, normalised in
/// their own shape (a map from the domain `to` to itself, no policy), so that
/// a difference in writing alone is no change. An item whose normalised form
/// is itself (`Same`) compares as written; only the others are kept, by id.
fn normalized(
    round: &Round<'_>,
    to: &Domain,
    to_fields: &Fields,
    differ: &[&Item],
    omit: &[&str],
) -> Result<HashMap<String, Item>> {
    let idf = round.plugin.id_field();
    let same = Shapes {
        from_domain: &to.name,
        to_domain: &to.name,
        from_fields: to_fields,
        to_fields,
    };
    // Nothing crosses: mapping alone normalises.
    let n = round
        .plugin
        .map_filter_omitting(round.runtime, &same, None, omit, differ)?;
    Ok(n.items
        .into_iter()
        .zip(differ)
        .filter_map(|(v, item)| match v {
            View::Same | View::Withheld => None,
            v => Some((id_of(item, idf).to_string(), v.into_item(item)?)),
        })
        .collect())
}

/// Milliseconds spent per named step, for the debug log (`-vv`).
struct StageTimer {
    last: Instant,
    laps: Vec<(&'static str, Duration)>,
}

impl StageTimer {
    fn new() -> StageTimer {
        StageTimer {
            last: Instant::now(),
            laps: Vec::new(),
        }
    }

    /// Adds the time since the previous lap to `name`.
    fn lap(&mut self, name: &'static str) {
        let now = Instant::now();
        let d = now - self.last;
        self.last = now;
        match self.laps.iter_mut().find(|(n, _)| *n == name) {
            Some((_, t)) => *t += d,
            None => self.laps.push((name, d)),
        }
    }

    fn summary(&self) -> String {
        self.laps
            .iter()
            .map(|(n, d)| format!("{n} {} ms", d.as_millis()))
            .collect::<Vec<_>>()
            .join(", ")
    }
}
