//! One topic: its in-memory log and its subscriptions' cursors — which entry goes to which
//! consumer next, what waits for an ack, what must be sent again. Plain synchronous code; the
//! broker turns the [`Delivery`]s it returns into MESSAGE frames.
//!
//! Simplifications against a real broker, on purpose: one ledger per topic (entry ids are the
//! log index); a batch entry is redelivered whole even if some of its messages were acked;
//! Key_Shared dispatches like Shared; Failover's active consumer is the first one connected.

use std::collections::{BTreeMap, BTreeSet};

use pulsar::message::proto::{
    command_subscribe::{InitialPosition, SubType},
    MessageIdData, MessageMetadata,
};

use crate::error::{Error, Result};

/// One stored entry: what a producer sent in one SEND (one message, or one batch).
#[derive(Debug, Clone)]
pub struct Entry {
    /// The metadata as the producer sent it; consumers get it unchanged.
    pub metadata: MessageMetadata,
    /// The payload (a batch envelope when `num_messages > 1`).
    pub data: Vec<u8>,
    /// Messages in this entry: 1, or the batch size.
    pub num_messages: u32,
}

/// A consumer, as the broker knows it: the connection and the id the client chose on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConsumerKey {
    /// The broker's id of the connection.
    pub connection: u64,
    /// The client's consumer id on that connection.
    pub consumer_id: u64,
}

/// An entry to push to a consumer.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// Who gets it.
    pub consumer: ConsumerKey,
    /// The id the consumer acks it with.
    pub message_id: MessageIdData,
    /// How often it was handed out before (0 on first delivery).
    pub redelivery_count: u32,
    /// The stored metadata.
    pub metadata: MessageMetadata,
    /// The stored payload.
    pub data: Vec<u8>,
}

/// Counters for test assertions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicStats {
    /// Entries in the log (one per SEND).
    pub entries: u64,
    /// Messages in the log (a batch counts its messages).
    pub messages: u64,
    /// Per subscription name.
    pub subscriptions: BTreeMap<String, SubscriptionStats>,
}

/// Counters of one subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionStats {
    /// The subscription's type.
    pub sub_type: SubType,
    /// Consumers attached now.
    pub consumers: usize,
    /// Entries not acked yet (delivered or not).
    pub backlog: u64,
    /// Entries delivered to a consumer and not acked yet.
    pub unacked: u64,
    /// Entries waiting to be delivered again.
    pub to_redeliver: u64,
}

/// A topic's log and subscriptions.
#[derive(Debug)]
pub struct Topic {
    ledger_id: u64,
    entries: Vec<Entry>,
    messages: u64,
    subscriptions: BTreeMap<String, Subscription>,
}

#[derive(Debug)]
struct Slot {
    key: ConsumerKey,
    permits: u64,
}

#[derive(Debug)]
struct Subscription {
    sub_type: SubType,
    durable: bool,
    /// Attached consumers in connection order; the first is Exclusive's/Failover's active one.
    consumers: Vec<Slot>,
    /// Where Shared dispatch looks for a consumer with permits next (round robin).
    next_shared: usize,
    /// Every entry below this one is acked.
    mark_delete: u64,
    /// Acked entries at or above `mark_delete`.
    acked: BTreeSet<u64>,
    /// The first entry never delivered.
    read_position: u64,
    /// Delivered entries waiting for an ack, and who holds them.
    pending: BTreeMap<u64, ConsumerKey>,
    /// Delivered entries to deliver again (nacked, or their consumer left), lowest first.
    redeliver: BTreeSet<u64>,
    /// Acked batch indexes of partly acked batch entries.
    partial: BTreeMap<u64, BTreeSet<i32>>,
    redelivery_counts: BTreeMap<u64, u32>,
}

impl Topic {
    /// An empty topic whose message ids use `ledger_id`.
    pub fn new(ledger_id: u64) -> Self {
        Topic {
            ledger_id,
            entries: Vec::new(),
            messages: 0,
            subscriptions: BTreeMap::new(),
        }
    }

    /// Appends an entry and returns its id (for the SEND_RECEIPT).
    pub fn publish(&mut self, metadata: MessageMetadata, data: Vec<u8>) -> MessageIdData {
        let num_messages = metadata
            .num_messages_in_batch
            .map_or(1, |n| u32::try_from(n).unwrap_or(1).max(1));
        let entry_id = self.entries.len() as u64;
        self.messages += u64::from(num_messages);
        self.entries.push(Entry {
            metadata,
            data,
            num_messages,
        });
        self.message_id(entry_id)
    }

    /// Attaches a consumer, creating the subscription at `initial` if it does not exist.
    /// Exclusive means one consumer: any second one gets `ConsumerBusy`, as does a consumer
    /// asking for another type than the attached ones have.
    pub fn subscribe(
        &mut self,
        name: &str,
        sub_type: SubType,
        consumer: ConsumerKey,
        initial: InitialPosition,
        durable: bool,
    ) -> Result<()> {
        let end = self.entries.len() as u64;
        let sub = self
            .subscriptions
            .entry(name.to_owned())
            .or_insert_with(|| Subscription::new(sub_type, durable, initial, end));
        if sub.consumers.iter().any(|slot| slot.key == consumer) {
            return Ok(());
        }
        if !sub.consumers.is_empty() {
            if sub.sub_type == SubType::Exclusive || sub_type == SubType::Exclusive {
                return Err(Error::ConsumerBusy(format!(
                    "exclusive consumer is already connected to subscription {name:?}"
                )));
            }
            if sub.sub_type != sub_type {
                return Err(Error::ConsumerBusy(format!(
                    "subscription {name:?} is of type {}",
                    sub.sub_type.as_str_name()
                )));
            }
        }
        sub.sub_type = sub_type;
        sub.consumers.push(Slot {
            key: consumer,
            permits: 0,
        });
        Ok(())
    }

    /// Adds FLOW permits to a consumer.
    pub fn flow(&mut self, subscription: &str, consumer: ConsumerKey, permits: u32) {
        if let Some(slot) = self
            .subscriptions
            .get_mut(subscription)
            .and_then(|sub| sub.slot_mut(consumer))
        {
            slot.permits += u64::from(permits);
        }
    }

    /// Applies an ACK. Ids of other ledgers or past the log's end are ignored.
    pub fn ack(&mut self, subscription: &str, ids: &[MessageIdData], cumulative: bool) {
        let Some(sub) = self.subscriptions.get_mut(subscription) else {
            return;
        };
        for id in ids {
            let Some(entry) = (id.ledger_id == self.ledger_id)
                .then(|| self.entries.get(id.entry_id as usize))
                .flatten()
            else {
                continue;
            };
            let batch_index = id.batch_index.filter(|_| entry.num_messages > 1);
            if cumulative {
                sub.ack_below(id.entry_id);
            }
            match batch_index {
                Some(index) => {
                    let acked = sub.partial.entry(id.entry_id).or_default();
                    if cumulative {
                        acked.extend(0..=index);
                    } else {
                        acked.insert(index);
                    }
                    if acked.len() as u64 >= u64::from(entry.num_messages) {
                        sub.ack_entry(id.entry_id);
                    }
                }
                None => sub.ack_entry(id.entry_id),
            }
        }
    }

    /// REDELIVER_UNACKNOWLEDGED_MESSAGES: the listed entries this consumer holds (all of them
    /// when `ids` is empty) are delivered again, to whichever consumer dispatch picks.
    pub fn redeliver(&mut self, subscription: &str, consumer: ConsumerKey, ids: &[MessageIdData]) {
        let ledger_id = self.ledger_id;
        if let Some(sub) = self.subscriptions.get_mut(subscription) {
            let entries: Vec<u64> = if ids.is_empty() {
                sub.held_by(consumer)
            } else {
                ids.iter()
                    .filter(|id| id.ledger_id == ledger_id)
                    .filter(|id| sub.pending.get(&id.entry_id) == Some(&consumer))
                    .map(|id| id.entry_id)
                    .collect()
            };
            sub.requeue(&entries);
        }
    }

    /// Detaches a consumer (CLOSE_CONSUMER or its connection dropped): what it held and did not
    /// ack goes to the next consumer. A non-durable subscription ends with its last consumer.
    pub fn remove_consumer(&mut self, subscription: &str, consumer: ConsumerKey) {
        let Some(sub) = self.subscriptions.get_mut(subscription) else {
            return;
        };
        sub.consumers.retain(|slot| slot.key != consumer);
        let held = sub.held_by(consumer);
        sub.requeue(&held);
        if !sub.durable && sub.consumers.is_empty() {
            self.subscriptions.remove(subscription);
        }
    }

    /// UNSUBSCRIBE: deletes the subscription, which only its single attached consumer may do.
    pub fn unsubscribe(&mut self, subscription: &str, consumer: ConsumerKey) -> Result<()> {
        let sub = self
            .subscriptions
            .get(subscription)
            .ok_or_else(|| Error::NotFound(format!("subscription {subscription:?}")))?;
        if sub.consumers.iter().any(|slot| slot.key != consumer) {
            return Err(Error::ConsumerBusy(format!(
                "other consumers are connected to subscription {subscription:?}"
            )));
        }
        self.subscriptions.remove(subscription);
        Ok(())
    }

    /// Hands out as many entries as consumers have permits for, in every subscription.
    pub fn dispatch(&mut self) -> Vec<Delivery> {
        let mut out = Vec::new();
        for sub in self.subscriptions.values_mut() {
            while let Some((entry_id, slot)) = sub.next_delivery(self.entries.len() as u64) {
                let entry = &self.entries[entry_id as usize];
                let slot = &mut sub.consumers[slot];
                slot.permits = slot.permits.saturating_sub(u64::from(entry.num_messages));
                let consumer = slot.key;
                if !sub.redeliver.remove(&entry_id) {
                    sub.read_position = entry_id + 1;
                }
                sub.pending.insert(entry_id, consumer);
                out.push(Delivery {
                    consumer,
                    message_id: MessageIdData {
                        ledger_id: self.ledger_id,
                        entry_id,
                        ..Default::default()
                    },
                    redelivery_count: sub.redelivery_counts.get(&entry_id).copied().unwrap_or(0),
                    metadata: entry.metadata.clone(),
                    data: entry.data.clone(),
                });
            }
        }
        out
    }

    /// Every attached consumer with its subscription's name.
    pub fn consumers(&self) -> Vec<(String, ConsumerKey)> {
        self.subscriptions
            .iter()
            .flat_map(|(name, sub)| sub.consumers.iter().map(|slot| (name.clone(), slot.key)))
            .collect()
    }

    /// Counters for assertions.
    pub fn stats(&self) -> TopicStats {
        let end = self.entries.len() as u64;
        TopicStats {
            entries: end,
            messages: self.messages,
            subscriptions: self
                .subscriptions
                .iter()
                .map(|(name, sub)| {
                    let stats = SubscriptionStats {
                        sub_type: sub.sub_type,
                        consumers: sub.consumers.len(),
                        backlog: end.saturating_sub(sub.mark_delete) - sub.acked.len() as u64,
                        unacked: sub.pending.len() as u64,
                        to_redeliver: sub.redeliver.len() as u64,
                    };
                    (name.clone(), stats)
                })
                .collect(),
        }
    }

    fn message_id(&self, entry_id: u64) -> MessageIdData {
        MessageIdData {
            ledger_id: self.ledger_id,
            entry_id,
            ..Default::default()
        }
    }
}

impl Subscription {
    fn new(sub_type: SubType, durable: bool, initial: InitialPosition, end: u64) -> Self {
        let start = match initial {
            InitialPosition::Earliest => 0,
            InitialPosition::Latest => end,
        };
        Subscription {
            sub_type,
            durable,
            consumers: Vec::new(),
            next_shared: 0,
            mark_delete: start,
            acked: BTreeSet::new(),
            read_position: start,
            pending: BTreeMap::new(),
            redeliver: BTreeSet::new(),
            partial: BTreeMap::new(),
            redelivery_counts: BTreeMap::new(),
        }
    }

    fn slot_mut(&mut self, consumer: ConsumerKey) -> Option<&mut Slot> {
        self.consumers.iter_mut().find(|slot| slot.key == consumer)
    }

    fn is_acked(&self, entry_id: u64) -> bool {
        entry_id < self.mark_delete || self.acked.contains(&entry_id)
    }

    /// The next entry to hand out and the index of the consumer that gets it, if any consumer
    /// has permits. Entries to redeliver come first.
    fn next_delivery(&mut self, end: u64) -> Option<(u64, usize)> {
        let entry_id = match self.redeliver.first() {
            Some(&entry_id) => entry_id,
            None => {
                while self.read_position < end && self.is_acked(self.read_position) {
                    self.read_position += 1;
                }
                (self.read_position < end).then_some(self.read_position)?
            }
        };
        let slot = match self.sub_type {
            SubType::Exclusive | SubType::Failover => {
                self.consumers.first().filter(|slot| slot.permits > 0)?;
                0
            }
            SubType::Shared | SubType::KeyShared => {
                let count = self.consumers.len();
                let slot = (0..count)
                    .map(|offset| (self.next_shared + offset) % count)
                    .find(|&index| self.consumers[index].permits > 0)?;
                self.next_shared = slot + 1;
                slot
            }
        };
        Some((entry_id, slot))
    }

    fn ack_entry(&mut self, entry_id: u64) {
        if self.is_acked(entry_id) {
            return;
        }
        self.pending.remove(&entry_id);
        self.redeliver.remove(&entry_id);
        self.partial.remove(&entry_id);
        self.redelivery_counts.remove(&entry_id);
        self.acked.insert(entry_id);
        while self.acked.remove(&self.mark_delete) {
            self.mark_delete += 1;
        }
    }

    /// Cumulative ack: every entry below `entry_id` is acked.
    fn ack_below(&mut self, entry_id: u64) {
        if entry_id <= self.mark_delete {
            return;
        }
        self.mark_delete = entry_id;
        self.pending = self.pending.split_off(&entry_id);
        self.redeliver = self.redeliver.split_off(&entry_id);
        self.acked = self.acked.split_off(&entry_id);
        self.partial = self.partial.split_off(&entry_id);
        self.redelivery_counts = self.redelivery_counts.split_off(&entry_id);
        while self.acked.remove(&self.mark_delete) {
            self.mark_delete += 1;
        }
    }

    fn held_by(&self, consumer: ConsumerKey) -> Vec<u64> {
        self.pending
            .iter()
            .filter(|(_, holder)| **holder == consumer)
            .map(|(entry_id, _)| *entry_id)
            .collect()
    }

    fn requeue(&mut self, entries: &[u64]) {
        for entry_id in entries {
            if self.pending.remove(entry_id).is_some() {
                self.redeliver.insert(*entry_id);
                *self.redelivery_counts.entry(*entry_id).or_default() += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: ConsumerKey = ConsumerKey {
        connection: 1,
        consumer_id: 0,
    };
    const B: ConsumerKey = ConsumerKey {
        connection: 2,
        consumer_id: 0,
    };

    fn topic_with(count: u64) -> Topic {
        let mut topic = Topic::new(7);
        for i in 0..count {
            topic.publish(MessageMetadata::default(), vec![i as u8]);
        }
        topic
    }

    fn delivered(deliveries: &[Delivery]) -> Vec<(ConsumerKey, u64)> {
        deliveries
            .iter()
            .map(|d| (d.consumer, d.message_id.entry_id))
            .collect()
    }

    fn id(entry_id: u64) -> MessageIdData {
        MessageIdData {
            ledger_id: 7,
            entry_id,
            ..Default::default()
        }
    }

    fn subscribe(topic: &mut Topic, sub_type: SubType, consumer: ConsumerKey) -> Result<()> {
        topic.subscribe("s", sub_type, consumer, InitialPosition::Earliest, true)
    }

    #[test]
    fn permits_bound_what_is_pushed() {
        let mut topic = topic_with(5);
        subscribe(&mut topic, SubType::Exclusive, A).unwrap();
        assert!(topic.dispatch().is_empty(), "no permits, no messages");
        topic.flow("s", A, 3);
        assert_eq!(delivered(&topic.dispatch()), [(A, 0), (A, 1), (A, 2)]);
        topic.flow("s", A, 10);
        assert_eq!(delivered(&topic.dispatch()), [(A, 3), (A, 4)]);
        topic.publish(MessageMetadata::default(), vec![]);
        assert_eq!(delivered(&topic.dispatch()), [(A, 5)]);
    }

    #[test]
    fn latest_subscription_starts_after_existing_entries() {
        let mut topic = topic_with(3);
        topic
            .subscribe("s", SubType::Exclusive, A, InitialPosition::Latest, true)
            .unwrap();
        topic.flow("s", A, 10);
        assert!(topic.dispatch().is_empty());
        assert_eq!(topic.stats().subscriptions["s"].backlog, 0);
    }

    #[test]
    fn exclusive_rejects_a_second_consumer_and_types_must_match() {
        let mut topic = topic_with(0);
        subscribe(&mut topic, SubType::Exclusive, A).unwrap();
        assert!(matches!(
            subscribe(&mut topic, SubType::Exclusive, B),
            Err(Error::ConsumerBusy(_))
        ));
        assert!(
            subscribe(&mut topic, SubType::Exclusive, A).is_ok(),
            "same consumer again"
        );
        topic.remove_consumer("s", A);
        subscribe(&mut topic, SubType::Shared, A).unwrap();
        subscribe(&mut topic, SubType::Shared, B).unwrap();
        assert!(matches!(
            subscribe(
                &mut topic,
                SubType::Failover,
                ConsumerKey {
                    connection: 3,
                    consumer_id: 0
                }
            ),
            Err(Error::ConsumerBusy(_))
        ));
    }

    #[test]
    fn acked_entries_are_not_redelivered_unacked_ones_are() {
        let mut topic = topic_with(3);
        subscribe(&mut topic, SubType::Exclusive, A).unwrap();
        topic.flow("s", A, 10);
        topic.dispatch();
        topic.ack("s", &[id(1)], false);
        let stats = &topic.stats().subscriptions["s"];
        assert_eq!((stats.backlog, stats.unacked), (2, 2));

        topic.remove_consumer("s", A);
        subscribe(&mut topic, SubType::Exclusive, B).unwrap();
        topic.flow("s", B, 10);
        let again = topic.dispatch();
        assert_eq!(delivered(&again), [(B, 0), (B, 2)]);
        assert!(again.iter().all(|d| d.redelivery_count == 1));
    }

    #[test]
    fn cumulative_ack_acks_everything_up_to_the_id() {
        let mut topic = topic_with(4);
        subscribe(&mut topic, SubType::Exclusive, A).unwrap();
        topic.flow("s", A, 10);
        topic.dispatch();
        topic.ack("s", &[id(2)], true);
        let stats = &topic.stats().subscriptions["s"];
        assert_eq!((stats.backlog, stats.unacked), (1, 1));
        topic.ack("s", &[id(3)], false);
        assert_eq!(topic.stats().subscriptions["s"].backlog, 0);
    }

    #[test]
    fn redeliver_request_requeues_only_the_consumers_own_entries() {
        let mut topic = topic_with(2);
        subscribe(&mut topic, SubType::Shared, A).unwrap();
        subscribe(&mut topic, SubType::Shared, B).unwrap();
        topic.flow("s", A, 1);
        topic.flow("s", B, 1);
        assert_eq!(delivered(&topic.dispatch()), [(A, 0), (B, 1)]);
        topic.redeliver("s", A, &[id(0), id(1)]);
        assert_eq!(topic.stats().subscriptions["s"].to_redeliver, 1);
        topic.flow("s", B, 1);
        assert_eq!(delivered(&topic.dispatch()), [(B, 0)]);
    }

    #[test]
    fn shared_round_robins_over_consumers_with_permits() {
        let mut topic = topic_with(4);
        subscribe(&mut topic, SubType::Shared, A).unwrap();
        subscribe(&mut topic, SubType::Shared, B).unwrap();
        topic.flow("s", A, 10);
        topic.flow("s", B, 10);
        assert_eq!(
            delivered(&topic.dispatch()),
            [(A, 0), (B, 1), (A, 2), (B, 3)]
        );
    }

    #[test]
    fn batch_entry_is_acked_when_all_its_messages_are() {
        let mut topic = Topic::new(7);
        let metadata = MessageMetadata {
            num_messages_in_batch: Some(3),
            ..Default::default()
        };
        topic.publish(metadata, vec![]);
        assert_eq!(topic.stats().messages, 3);
        subscribe(&mut topic, SubType::Exclusive, A).unwrap();
        topic.flow("s", A, 3);
        assert_eq!(topic.dispatch().len(), 1);
        let batch = |index| MessageIdData {
            batch_index: Some(index),
            ..id(0)
        };
        topic.ack("s", &[batch(0), batch(2)], false);
        assert_eq!(topic.stats().subscriptions["s"].backlog, 1);
        topic.ack("s", &[batch(1)], false);
        assert_eq!(topic.stats().subscriptions["s"].backlog, 0);
    }

    #[test]
    fn non_durable_subscription_ends_with_its_last_consumer() {
        let mut topic = topic_with(1);
        topic
            .subscribe("r", SubType::Exclusive, A, InitialPosition::Earliest, false)
            .unwrap();
        topic.remove_consumer("r", A);
        assert!(topic.stats().subscriptions.is_empty());
    }

    #[test]
    fn unsubscribe_needs_to_be_the_only_consumer() {
        let mut topic = topic_with(0);
        subscribe(&mut topic, SubType::Shared, A).unwrap();
        subscribe(&mut topic, SubType::Shared, B).unwrap();
        assert!(topic.unsubscribe("s", A).is_err());
        topic.remove_consumer("s", B);
        topic.unsubscribe("s", A).unwrap();
        assert!(topic.stats().subscriptions.is_empty());
    }
}
