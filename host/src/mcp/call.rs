//! How one sync-tool call reaches its caller: as a plain request (stopped by
//! `notifications/cancelled`, progress as `notifications/progress`), or as a
//! task of the MCP tasks extension (stopped by `tasks/cancel`, progress as
//! the task's status message, fetched with `tasks/get`). The sync itself
//! does not know which.

use crate::record::EntityResult;
use crate::sync::Progress;
use rmcp::model::ProgressNotificationParam;
use rmcp::service::{Peer, RequestContext, RoleServer};
use rmcp::task_manager::TaskContext;
use std::sync::atomic::{AtomicUsize, Ordering};

/// One call of the sync tool.
#[derive(Clone)]
pub enum Call {
    Request(RequestContext<RoleServer>),
    Task {
        peer: Peer<RoleServer>,
        task: TaskContext,
    },
}

impl Call {
    /// The client, to ask its user.
    pub fn peer(&self) -> &Peer<RoleServer> {
        match self {
            Call::Request(c) => &c.peer,
            Call::Task { peer, .. } => peer,
        }
    }

    /// Resolves when the caller has cancelled the call.
    pub async fn stopped(&self) {
        match self {
            Call::Request(c) => c.ct.cancelled().await,
            Call::Task { task, .. } => task.cancelled().await,
        }
    }

    /// How progress reaches the caller; `None` when a plain request asked
    /// for none (no progress token).
    pub fn progress(&self) -> Option<Box<dyn Progress + Send>> {
        match self {
            Call::Request(c) => c.meta.get_progress_token().map(|token| {
                Box::new(Notifications {
                    peer: c.peer.clone(),
                    token,
                    handle: tokio::runtime::Handle::current(),
                    counts: Counts::default(),
                }) as Box<dyn Progress + Send>
            }),
            Call::Task { task, .. } => Some(Box::new(Status {
                task: task.clone(),
                counts: Counts::default(),
            })),
        }
    }
}

/// Types finished and in all, across the worker threads.
#[derive(Default)]
struct Counts {
    done: AtomicUsize,
    total: AtomicUsize,
}

impl Counts {
    fn started(&self, total: usize) -> usize {
        self.total.store(total, Ordering::SeqCst);
        self.done.load(Ordering::SeqCst)
    }

    /// Types done and in all, counting this one.
    fn finished(&self) -> (usize, usize) {
        let n = self.done.fetch_add(1, Ordering::SeqCst) + 1;
        (n, self.total.load(Ordering::SeqCst).max(n))
    }
}

fn done_message(entity: &str, r: &EntityResult) -> String {
    format!(
        "Synced {entity}: {} added, {} updated, {} deleted",
        r.added, r.updated, r.deleted
    )
}

/// `notifications/progress`, one per entity type started and finished.
struct Notifications {
    peer: Peer<RoleServer>,
    token: rmcp::model::ProgressToken,
    handle: tokio::runtime::Handle,
    counts: Counts,
}

impl Notifications {
    fn send(&self, progress: usize, total: usize, message: String) {
        let p = ProgressNotificationParam::new(self.token.clone(), progress as f64)
            .with_total(total as f64)
            .with_message(message);
        // Called from the pipeline's worker threads (not runtime threads), so
        // blocking here keeps notifications ahead of the response.
        let peer = self.peer.clone();
        let _ = self
            .handle
            .block_on(async move { peer.notify_progress(p).await });
    }
}

impl Progress for Notifications {
    fn entity_started(&self, entity: &str, _index: usize, total: usize) {
        let n = self.counts.started(total);
        self.send(n, total, format!("Syncing {entity} entities..."));
    }
    fn entity_done(&self, entity: &str, r: &EntityResult) {
        let (n, total) = self.counts.finished();
        self.send(n, total, done_message(entity, r));
    }
}

/// A task's status message, which `tasks/get` returns.
struct Status {
    task: TaskContext,
    counts: Counts,
}

impl Progress for Status {
    fn entity_started(&self, entity: &str, _index: usize, total: usize) {
        let n = self.counts.started(total);
        self.task
            .set_status_message(format!("{n} of {total} types done; syncing {entity}"));
    }
    fn entity_done(&self, entity: &str, r: &EntityResult) {
        let (n, total) = self.counts.finished();
        self.task.set_status_message(format!(
            "{n} of {total} types done; {}",
            done_message(entity, r)
        ));
    }
}
