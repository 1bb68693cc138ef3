//! The Events a reconcile publishes on its ChatCluster: one per step taken or failure.

use kube::runtime::events::{Event, EventType};
use kube::Resource;
use tracing::warn;

use crate::context::Context;
use crate::crd::ChatCluster;
use crate::rollout::{Action, Observed, Plan};
use crate::Result;

/// Publishes the Event for this round: the action executed, a rollout step reached, or the
/// failure. Waits that change nothing publish none, and neither does a steady cluster.
pub(super) async fn tell(
    ctx: &Context,
    cc: &ChatCluster,
    plan: &Plan,
    observed: &Observed,
    outcome: &Result<()>,
) {
    let event = match outcome {
        Err(err) => Event {
            type_: EventType::Warning,
            reason: "ReconcileFailed".into(),
            note: Some(truncate(&err.to_string())),
            action: "Reconcile".into(),
            secondary: None,
        },
        Ok(()) if plan.action == Action::Steady => return,
        Ok(()) if plan.action.is_wait() && plan.rollout == observed.previous => return,
        Ok(()) => {
            let note = truncate(&plan.action.to_string());
            Event {
                type_: EventType::Normal,
                reason: plan.action.reason().into(),
                // The recorder folds Events of one action and reason into a series that keeps
                // its first note: "Scaling (x2): scaling the StatefulSet to 2" after a scale to
                // 5. The action names what this step does, so only repeats of it fold.
                action: event_action(plan.action.reason(), &note),
                note: Some(note),
                secondary: None,
            }
        }
    };
    publish(ctx, cc, event).await;
}

pub(super) async fn publish(ctx: &Context, cc: &ChatCluster, event: Event) {
    if let Err(err) = ctx.recorder.publish(&event, &cc.object_ref(&())).await {
        warn!(%err, reason = %event.reason, "publishing an Event");
    }
}

/// An Event's `action` for a step: its reason and what it acts on, within the API's 128 bytes.
pub(super) fn event_action(reason: &str, note: &str) -> String {
    const MAX: usize = 128;
    let mut action = format!("{reason}: {note}");
    if action.len() > MAX {
        let mut end = MAX;
        while !action.is_char_boundary(end) {
            end -= 1;
        }
        action.truncate(end);
    }
    action
}

/// Event notes are limited to 1 kB.
pub(super) fn truncate(note: &str) -> String {
    const MAX: usize = 1000;
    if note.len() <= MAX {
        return note.to_owned();
    }
    let mut end = MAX;
    while !note.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &note[..end])
}

pub(super) fn normal(reason: &str, note: String) -> Event {
    Event {
        type_: EventType::Normal,
        reason: reason.into(),
        note: Some(truncate(&note)),
        action: reason.into(),
        secondary: None,
    }
}
