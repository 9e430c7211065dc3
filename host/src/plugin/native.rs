//! The built-in plugins' code compiled into the host, unsandboxed, behind the
//! `native-plugins` feature: the baseline that benchmark B2 compares the
//! sandbox against. Never part of a normal build.

use super::runtime::{CrossRequest, CrossResult, Crossed, Descriptor, NativePlugin, Outcome};
use cds_plugin_sdk::{CrossOutcome, EntityPlugin};

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

fn cross<P: EntityPlugin>(req: &CrossRequest) -> Result<CrossResult, String> {
    let c = cds_plugin_sdk::cross_batch::<P>(
        &pairs(&req.from_fields),
        &pairs(&req.to_fields),
        req.policy.as_deref(),
        &req.items,
    )?;
    Ok(CrossResult {
        items: c
            .items
            .into_iter()
            .map(|i| Crossed {
                mapped: i.mapped,
                outcome: match i.outcome {
                    CrossOutcome::Kept => Outcome::Kept,
                    CrossOutcome::Changed(s) => Outcome::Changed(s),
                    CrossOutcome::Withheld => Outcome::Withheld,
                },
            })
            .collect(),
        redacted_fields: c.redacted_fields,
    })
}

macro_rules! native {
    ($name:literal, $p:ty) => {
        NativePlugin {
            name: $name,
            describe: describe::<$p>,
            cross: cross::<$p>,
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
