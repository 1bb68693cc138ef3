//! A minimal kubelet: pods turn Ready [`Settings::pod_ready_after`](super::Settings) after
//! creation (unless held back with [`FakeApi::hold_unready`]) and are removed
//! [`Settings::pod_terminate_after`](super::Settings) after deletion, once no finalizer holds
//! them. With [`Settings::external_kubelet`](super::Settings) the test is the kubelet instead:
//! pods turn Ready or unready by [`FakeApi::set_pod_ready`] and finish terminating by
//! [`FakeApi::finish_termination`].

use serde_json::{json, Value};

use super::kinds::{Key, Kind};
use super::objects::finalizers;
use super::{FakeApi, Inner, State};

impl FakeApi {
    /// Keeps pods named `name` that are not Ready yet (a replacement, say) from turning Ready until
    /// [`Self::release_unready`]. A pod that is Ready already stays Ready.
    pub fn hold_unready(&self, name: &str) {
        self.state().held_unready.insert(name.into());
    }

    /// Lets the kubelet make the pod `name` Ready again.
    pub fn release_unready(&self, name: &str) {
        self.state().held_unready.remove(name);
        self.inner.wake.notify_one();
    }

    /// As the kubelet of pod `name` (instance `uid`) with [`Settings::external_kubelet`]: sets its
    /// Ready condition (and phase `Running`, `podIP` `ip`). False when that instance is gone.
    ///
    /// [`Settings::external_kubelet`]: super::Settings::external_kubelet
    pub fn set_pod_ready(
        &self,
        namespace: &str,
        name: &str,
        uid: &str,
        ready: bool,
        ip: &str,
    ) -> bool {
        let key = Key::new(Kind::pod(), namespace, name);
        let mut state = self.state();
        let Some(pod) = state
            .objects
            .get(&key)
            .filter(|p| p["metadata"]["uid"] == uid)
        else {
            return false;
        };
        let status = json!({
            "phase": "Running",
            "podIP": ip,
            "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}],
        });
        if pod["status"] != status {
            let mut new = pod.clone();
            new["status"] = status;
            self.inner.store(&mut state, &key, new, "MODIFIED");
            drop(state);
            self.inner.wake.notify_one();
        }
        true
    }

    /// As the kubelet of a deleted pod `name` (instance `uid`) whose containers exited: removes it
    /// (unless finalizers hold it), so the StatefulSet controller can create its replacement.
    pub fn finish_termination(&self, namespace: &str, name: &str, uid: &str) {
        let key = Key::new(Kind::pod(), namespace, name);
        let mut state = self.state();
        let terminated = state.objects.get(&key).is_some_and(|p| {
            p["metadata"]["uid"] == uid
                && p["metadata"].get("deletionTimestamp").is_some()
                && finalizers(p).is_empty()
        });
        if terminated {
            self.inner.remove(&mut state, &key);
            drop(state);
            self.inner.wake.notify_one();
        }
    }
}

impl Inner {
    /// Pods turn Ready after a while and terminate a while after they were deleted.
    pub(super) fn run_kubelet(&self, state: &mut State) {
        let settings = self.settings;
        if settings.external_kubelet {
            return;
        }
        let gone: Vec<Key> = state
            .pod_deleted
            .iter()
            .filter(|(_, at)| at.elapsed() >= settings.pod_terminate_after)
            .map(|(k, _)| k.clone())
            .collect();
        for key in gone {
            let holds = state
                .objects
                .get(&key)
                .is_some_and(|p| !finalizers(p).is_empty());
            if !holds {
                self.remove(state, &key);
            }
        }
        let starting: Vec<Key> = state
            .pod_created
            .iter()
            .filter(|(k, at)| {
                at.elapsed() >= settings.pod_ready_after
                    && !state.pod_deleted.contains_key(*k)
                    && !state.held_unready.contains(&k.name)
            })
            .map(|(k, _)| k.clone())
            .collect();
        for key in starting {
            let Some(pod) = state.objects.get(&key).cloned() else {
                continue;
            };
            if is_ready(&pod) {
                continue;
            }
            let ip = format!("10.0.{}.{}", state.next_uid / 250, state.next_uid % 250 + 1);
            state.next_uid += 1;
            let mut ready = pod;
            ready["status"] = json!({
                "phase": "Running",
                "podIP": ip,
                "conditions": [{"type": "Ready", "status": "True"}],
            });
            self.store(state, &key, ready, "MODIFIED");
        }
    }
}

/// Whether the pod's Ready condition is True.
pub fn is_ready(pod: &Value) -> bool {
    pod["status"]["conditions"].as_array().is_some_and(|cs| {
        cs.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    })
}
