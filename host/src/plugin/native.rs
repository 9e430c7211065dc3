//! The built-in plugins' code compiled into the host, unsandboxed, behind the
//! `native-plugins` feature: the baseline that benchmark B2 compares the
//! sandbox against. Never part of a normal build.

use super::runtime::{Descriptor, FilterRequest, FilterResult, MapRequest};
use cds_plugin_sdk::EntityPlugin;

/// One plugin's entry points.
pub struct NativePlugin {
    pub name: &'static str,
    pub describe: fn() -> Descriptor,
    pub map: fn(&MapRequest) -> Result<Vec<String>, String>,
    pub filter: fn(&FilterRequest) -> Result<FilterResult, String>,
}

fn describe<P: EntityPlugin>() -> Descriptor {
    Descriptor {
        entity_type: P::ENTITY_TYPE.into(),
        plugin_version: P::VERSION.into(),
        interface_version: cds_plugin_sdk::INTERFACE_VERSION.into(),
        item_schema: P::ITEM_SCHEMA.into(),
        id_field: P::ID_FIELD.into(),
    }
}

fn pairs(r: &[super::runtime::Rename]) -> Vec<(&str, &str)> {
    r.iter()
        .map(|r| (r.canonical.as_str(), r.local.as_str()))
        .collect()
}

fn map<P: EntityPlugin>(req: &MapRequest) -> Result<Vec<String>, String> {
    cds_plugin_sdk::map_batch::<P>(&pairs(&req.from_fields), &pairs(&req.to_fields), &req.items)
}

fn filter<P: EntityPlugin>(req: &FilterRequest) -> Result<FilterResult, String> {
    let f = cds_plugin_sdk::filter_batch::<P>(&req.policy, &req.items)?;
    Ok(FilterResult {
        kept: f.kept,
        withheld: f.withheld,
        redacted_fields: f.redacted_fields,
    })
}

macro_rules! native {
    ($name:literal, $p:ty) => {
        NativePlugin {
            name: $name,
            describe: describe::<$p>,
            map: map::<$p>,
            filter: filter::<$p>,
        }
    };
}

static PLUGINS: [NativePlugin; 5] = [
    native!("contacts", cds_plugin_contacts::Plugin),
    native!("calendar", cds_plugin_calendar::Plugin),
    native!("tasks", cds_plugin_tasks::Plugin),
    native!("documents", cds_plugin_documents::Plugin),
    native!("communications", cds_plugin_communications::Plugin),
];

pub fn find(name: &str) -> Option<&'static NativePlugin> {
    PLUGINS.iter().find(|p| p.name == name)
}
