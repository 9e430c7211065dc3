//! The merge core on arbitrary items and bases: no panic, a merge or SYNC_CONFLICT.
#![no_main]
use cds::merge::{self, Base, BaseEntry, Direction, Item, MergeInput, Options, SideInput, View};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;

fn items(v: Option<&Value>) -> Vec<Item> {
    v.and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|i| i.as_object().cloned()).collect())
        .unwrap_or_default()
}

fuzz_target!(|data: &[u8]| {
    let Ok(v) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let a = items(v.get("a"));
    let b = items(v.get("b"));
    let base: Base = items(v.get("base"))
        .into_iter()
        .filter_map(|e| {
            let id = e.get("id")?.as_str()?.to_string();
            Some((id, BaseEntry::same(e)))
        })
        .collect();
    let flags = v.get("flags").and_then(Value::as_u64).unwrap_or(0);
    let dir = [Direction::Bidirectional, Direction::SourceToTarget, Direction::TargetToSource]
        [(flags % 3) as usize];
    let withheld = flags & 4 != 0;
    // A view equal to its item is `Same`, as the plugins report it.
    let views = |v: &[Item]| {
        v.iter()
            .map(|_| if withheld { View::Withheld } else { View::Same })
            .collect::<Vec<_>>()
    };
    let (va, vb) = (views(&a), views(&b));
    let none = HashMap::new();
    let shared = |v: Vec<Item>| v.into_iter().map(Arc::new).collect();
    let r = merge::merge(MergeInput {
        source: SideInput { domain: "p", items: shared(a), views: va, base_views: &none, normalized: &HashMap::new() },
        target: SideInput { domain: "b", items: shared(b), views: vb, base_views: &none, normalized: &HashMap::new() },
        base,
        direction: dir,
        options: Options { no_delete: flags & 8 != 0, allow_mass_delete: flags & 16 != 0 },
        id_field: "id",
        stamp: "2026-01-12T10:00:00Z",
        settled: 0,
    });
    if let Err(e) = r {
        assert_eq!(e.code, cds::Code::SyncConflict);
    }
});
