//! Confirmation before destructive work, asked of the user through the
//! client (MCP form-mode elicitation): a sync the mass-delete guard stopped,
//! and an undo.
//!
//! In a task (the tasks extension) the question is one of the task's input
//! requests, answered with `tasks/update`; in a plain call it is an
//! `elicitation/create` request. Only a client that declared form
//! elicitation is asked. Without it
//! everything works as before: the guard's refusal stands (the caller may run
//! again with `allowMassDelete`, or dry-run first), and an undo runs as
//! called. A question that cannot be put or answered (the client failed, the
//! call was cancelled) counts as a no: destructive work is never done on a
//! doubt.

use super::call::Call;
use crate::install::Host;
use crate::record::SyncRecord;
use rmcp::model::InputRequest;
use rmcp::model::{
    ElicitRequest, ElicitRequestParams, ElicitResult, ElicitationAction, ElicitationSchema,
};
use rmcp::service::{ElicitationError, ElicitationMode};
use rmcp::task_manager::TaskContext;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

/// The answer asked for: one yes or no.
#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(title = "Confirm")]
struct Confirm {
    /// Yes to go ahead.
    confirm: bool,
}
rmcp::elicit_safe!(Confirm);

/// What the user said.
#[derive(Debug, PartialEq)]
pub enum Answer {
    Yes,
    /// Why not, as a clause ("declined", "answered no", …).
    No(String),
    /// The client cannot ask.
    NotAsked,
}

/// Asks `message` of the user when the client can ask.
async fn ask(call: &Call, message: String) -> Answer {
    if !call
        .peer()
        .supported_elicitation_modes()
        .contains(&ElicitationMode::Form)
    {
        return Answer::NotAsked;
    }
    let asked = async {
        match call {
            Call::Task { task, .. } => ask_in_task(task, message).await,
            Call::Request(c) => match c.peer.elicit::<Confirm>(message).await {
                Ok(Some(Confirm { confirm: true })) => Answer::Yes,
                Ok(Some(Confirm { confirm: false })) => Answer::No("answered no".into()),
                Ok(None) | Err(ElicitationError::NoContent) => Answer::No("gave no answer".into()),
                Err(ElicitationError::UserDeclined) => Answer::No("declined".into()),
                Err(ElicitationError::UserCancelled) => Answer::No("cancelled".into()),
                Err(ElicitationError::CapabilityNotSupported) => Answer::NotAsked,
                Err(e) => {
                    tracing::warn!("asking the user to confirm failed: {e}");
                    Answer::No(format!("could not be asked ({e})"))
                }
            },
        }
    };
    tokio::select! {
        a = asked => a,
        _ = call.stopped() => Answer::No("the call was cancelled".into()),
    }
}

/// The question as the task's input request `confirm`.
async fn ask_in_task(task: &TaskContext, message: String) -> Answer {
    let schema = match ElicitationSchema::from_type::<Confirm>() {
        Ok(s) => s,
        Err(e) => return Answer::No(format!("could not be asked ({e})")),
    };
    let request = InputRequest::Elicitation(ElicitRequest::new(
        ElicitRequestParams::FormElicitationParams {
            meta: None,
            message,
            requested_schema: schema,
        },
    ));
    match task.request_input("confirm", request).await {
        Ok(v) => match serde_json::from_value::<ElicitResult>(v) {
            Ok(r) => match (r.action, r.content) {
                (ElicitationAction::Accept, Some(c)) => {
                    match serde_json::from_value::<Confirm>(c) {
                        Ok(Confirm { confirm: true }) => Answer::Yes,
                        Ok(Confirm { confirm: false }) => Answer::No("answered no".into()),
                        Err(e) => Answer::No(format!("gave an answer that is not yes or no ({e})")),
                    }
                }
                (ElicitationAction::Accept, None) => Answer::No("gave no answer".into()),
                (ElicitationAction::Decline, _) => Answer::No("declined".into()),
                (ElicitationAction::Cancel, _) => Answer::No("cancelled".into()),
                (other, _) => Answer::No(format!("answered `{other:?}`")),
            },
            Err(e) => Answer::No(format!(
                "gave an answer that is not an elicitation result ({e})"
            )),
        },
        Err(_) => Answer::No("the task ended before an answer".into()),
    }
}

/// After a sync: when the mass-delete guard stopped it (and the call neither
/// allowed mass deletion nor was a dry run), asks whether to delete, with the
/// counts; else does not ask.
pub async fn mass_delete(rec: &SyncRecord, args: &Value, call: &Call) -> Answer {
    let flag = |k: &str| args.get(k).and_then(Value::as_bool).unwrap_or(false);
    if flag("allowMassDelete") || flag("dryRun") {
        return Answer::NotAsked;
    }
    let Some(guard) = rec.errors.iter().find(|e| {
        e.details.get("guard").and_then(Value::as_str) == Some(crate::error::MASS_DELETE_GUARD)
    }) else {
        return Answer::NotAsked;
    };
    let d = &guard.details;
    let text = |k: &str| d.get(k).and_then(Value::as_str).unwrap_or("?");
    let count = |k: &str| d.get(k).and_then(Value::as_u64).unwrap_or(0);
    let (domain, entity, base) = (text("domain"), text("entity"), count("baseItems"));
    let what = if d.get("empty").and_then(Value::as_bool) == Some(true) {
        format!(
            "`{domain}` lists no {entity} at all, though both domains last agreed on {base}, so \
             the sync from `{}` to `{}` would delete {} {entity} items",
            rec.source_domain,
            rec.target_domain,
            count("allDeletions")
        )
    } else {
        format!(
            "the sync from `{}` to `{}` would delete {} of the {base} {entity} items both \
             domains last agreed on from `{domain}` ({} deletions in all)",
            rec.source_domain,
            rec.target_domain,
            count("deletions"),
            count("allDeletions")
        )
    };
    let mut message = what;
    if let Some(first) = message.get(..1) {
        message.replace_range(..1, &first.to_uppercase());
    }
    message.push_str(
        ". That looks like an emptied or re-pointed store, so nothing has been changed yet. \
         Delete them? (Each sync keeps a backup; `undo` can bring the items back.)",
    );
    ask(call, message).await
}

/// Before an undo: asks whether to undo the sync, with what the sync did;
/// `Some` is the tool's answer when the user said no, `None` means go on
/// (yes, or the client cannot ask, or there is no such sync or the
/// arguments are for validation to refuse).
pub async fn undo(host: &Host, args: &Value, call: &Call) -> Option<Value> {
    let sync_id = args.get("syncId").and_then(Value::as_str)?;
    let what = match SyncRecord::read(&host.data, sync_id).ok().flatten() {
        Some(rec) => {
            let t = rec.total();
            format!(
                " It ran from `{}` to `{}` ({}) at {} and added {}, updated {} and deleted {} \
                 items; those go back to how they were before it, in both domains.",
                rec.source_domain,
                rec.target_domain,
                rec.sync_direction,
                rec.timestamp,
                t.added,
                t.updated,
                t.deleted
            )
        }
        // No such sync: the undo refuses with its own error; nothing to ask.
        None => return None,
    };
    match ask(call, format!("Undo sync `{sync_id}`?{what}")).await {
        Answer::Yes | Answer::NotAsked => None,
        Answer::No(why) => Some(json!({
            "syncId": sync_id,
            "undone": false,
            "message": format!("The user was asked to confirm the undo and {why}; nothing was changed."),
        })),
    }
}
