//! The broker's state: tenants, namespaces, topics, and which connection owns which producer
//! and consumer. Every call takes one request and returns the frames it causes, addressed by
//! connection id ([`Outbound`]) — no I/O here; `broker.rs` routes the frames.
//!
//! Topics are created on first use by a producer or consumer, and their tenant and namespace
//! with them (a real broker would refuse a missing namespace; a test broker should not get in
//! the way). The admin API is strict, like Pulsar's: a namespace needs its tenant, a topic its
//! namespace. `public` and `public/default` exist from the start, as in Pulsar standalone.

use std::collections::{BTreeMap, BTreeSet};

use pulsar::message::{
    proto::{
        command_ack::AckType,
        command_subscribe::{InitialPosition, SubType},
        BaseCommand, CommandProducer, CommandSend, CommandSubscribe, MessageIdData,
    },
    Message, Payload,
};

use crate::{
    commands,
    error::{Error, Result},
    name::TopicName,
    topic::{ConsumerKey, Topic, TopicStats},
};

/// A frame to send, and the id of the connection to send it on.
pub type Outbound = (u64, Message);

/// Tenants, namespaces, topics, producers, consumers.
#[derive(Debug)]
pub struct State {
    service_url: String,
    /// Tenant → local names of its namespaces.
    tenants: BTreeMap<String, BTreeSet<String>>,
    /// Full topic name → topic.
    topics: BTreeMap<String, Topic>,
    connections: BTreeSet<u64>,
    next_connection: u64,
    next_ledger: u64,
    next_producer_name: u64,
    /// (connection, producer id) → full topic name.
    producers: BTreeMap<(u64, u64), String>,
    /// Consumer → (full topic name, subscription).
    consumers: BTreeMap<ConsumerKey, (String, String)>,
    paused: bool,
}

impl State {
    /// An empty broker whose lookups point clients at `service_url`.
    pub fn new(service_url: String) -> Self {
        let default_namespace = BTreeSet::from(["default".to_owned()]);
        State {
            service_url,
            tenants: BTreeMap::from([("public".to_owned(), default_namespace)]),
            topics: BTreeMap::new(),
            connections: BTreeSet::new(),
            next_connection: 1,
            next_ledger: 1,
            next_producer_name: 1,
            producers: BTreeMap::new(),
            consumers: BTreeMap::new(),
            paused: false,
        }
    }

    /// Registers a connection that finished its handshake and returns its id.
    pub fn open_connection(&mut self) -> u64 {
        let id = self.next_connection;
        self.next_connection += 1;
        self.connections.insert(id);
        id
    }

    /// Forgets a connection: its producers go, its consumers' unacked entries go to the next
    /// consumer. Frames from a closed connection that are still in flight are ignored.
    pub fn close_connection(&mut self, connection: u64) -> Vec<Outbound> {
        let mut out = Vec::new();
        if !self.connections.remove(&connection) {
            return out;
        }
        self.producers.retain(|(owner, _), _| *owner != connection);
        let consumers: Vec<ConsumerKey> = self
            .consumers
            .keys()
            .filter(|key| key.connection == connection)
            .copied()
            .collect();
        for key in consumers {
            self.detach(key, &mut out);
        }
        out
    }

    /// Ids of the open connections.
    pub fn connections(&self) -> Vec<u64> {
        self.connections.iter().copied().collect()
    }

    /// Stops (or resumes) pushing messages; publishing and acks go on.
    pub fn set_paused(&mut self, paused: bool) -> Vec<Outbound> {
        self.paused = paused;
        let mut out = Vec::new();
        let names: Vec<String> = self.topics.keys().cloned().collect();
        for name in names {
            self.dispatch(&name, &mut out);
        }
        out
    }

    /// Handles one frame from a connection (CONNECT, PING and PONG are the connection's own
    /// business and never get here).
    pub fn handle(&mut self, connection: u64, message: Message) -> Vec<Outbound> {
        let mut out = Vec::new();
        if !self.connections.contains(&connection) {
            return out;
        }
        let Message { command, payload } = message;
        let reply = |frame: Message| (connection, frame);
        let BaseCommand {
            r#type,
            lookup_topic,
            partition_metadata,
            producer,
            send,
            subscribe,
            flow,
            ack,
            redeliver_unacknowledged_messages,
            close_producer,
            close_consumer,
            unsubscribe,
            consumer_stats,
            seek,
            get_last_message_id,
            get_topics_of_namespace,
            get_schema,
            ..
        } = command;
        if let Some(lookup) = lookup_topic {
            let checked = TopicName::parse(&lookup.topic).map(|_| self.service_url.as_str());
            out.push(reply(commands::lookup_response(
                lookup.request_id,
                checked.as_ref().copied(),
            )));
        } else if let Some(metadata) = partition_metadata {
            let checked = TopicName::parse(&metadata.topic).map(|_| ());
            out.push(reply(commands::partitioned_metadata_response(
                metadata.request_id,
                checked.as_ref().copied(),
            )));
        } else if let Some(producer) = producer {
            let request_id = producer.request_id;
            let frame = self
                .create_producer(connection, producer)
                .unwrap_or_else(|error| commands::error(request_id, &error));
            out.push(reply(frame));
        } else if let Some(send) = send {
            self.send(connection, send, payload, &mut out);
        } else if let Some(subscribe) = subscribe {
            let request_id = subscribe.request_id;
            let frame = match self.subscribe(connection, subscribe) {
                Ok(()) => commands::success(request_id),
                Err(error) => commands::error(request_id, &error),
            };
            out.push(reply(frame));
        } else if let Some(flow) = flow {
            let key = consumer_key(connection, flow.consumer_id);
            if let Some((topic, subscription)) = self.consumers.get(&key).cloned() {
                if let Some(topic_state) = self.topics.get_mut(&topic) {
                    topic_state.flow(&subscription, key, flow.message_permits);
                }
                self.dispatch(&topic, &mut out);
            }
        } else if let Some(ack) = ack {
            let key = consumer_key(connection, ack.consumer_id);
            let cumulative = ack.ack_type == AckType::Cumulative as i32;
            if let Some((topic, subscription)) = self.consumers.get(&key) {
                if let Some(topic_state) = self.topics.get_mut(topic) {
                    topic_state.ack(subscription, &ack.message_id, cumulative);
                }
            }
            if let Some(request_id) = ack.request_id {
                out.push(reply(commands::ack_response(ack.consumer_id, request_id)));
            }
        } else if let Some(redeliver) = redeliver_unacknowledged_messages {
            let key = consumer_key(connection, redeliver.consumer_id);
            if let Some((topic, subscription)) = self.consumers.get(&key).cloned() {
                if let Some(topic_state) = self.topics.get_mut(&topic) {
                    topic_state.redeliver(&subscription, key, &redeliver.message_ids);
                }
                self.dispatch(&topic, &mut out);
            }
        } else if let Some(close) = close_producer {
            self.producers.remove(&(connection, close.producer_id));
            out.push(reply(commands::success(close.request_id)));
        } else if let Some(close) = close_consumer {
            self.detach(consumer_key(connection, close.consumer_id), &mut out);
            out.push(reply(commands::success(close.request_id)));
        } else if let Some(unsubscribe) = unsubscribe {
            let request_id = unsubscribe.request_id;
            let frame = match self.unsubscribe(consumer_key(connection, unsubscribe.consumer_id)) {
                Ok(()) => commands::success(request_id),
                Err(error) => commands::error(request_id, &error),
            };
            out.push(reply(frame));
        } else {
            // Commands the client only sends when asked to (stats, seek, schemas, regex
            // subscriptions): fail them at once instead of letting the client time out.
            let request_id = consumer_stats
                .map(|c| c.request_id)
                .or(seek.map(|c| c.request_id))
                .or(get_last_message_id.map(|c| c.request_id))
                .or(get_topics_of_namespace.map(|c| c.request_id))
                .or(get_schema.map(|c| c.request_id));
            tracing::warn!(command_type = r#type, "unsupported command");
            if let Some(request_id) = request_id {
                let error = Error::NotAllowed(format!(
                    "command type {type} is not supported by the test broker",
                    type = r#type
                ));
                out.push(reply(commands::error(request_id, &error)));
            }
        }
        out
    }

    fn create_producer(&mut self, connection: u64, producer: CommandProducer) -> Result<Message> {
        let topic = self.ensure_topic(&TopicName::parse(&producer.topic)?);
        let name = match producer.producer_name.filter(|name| !name.is_empty()) {
            Some(name) => name,
            None => {
                self.next_producer_name += 1;
                format!("test-broker-{}", self.next_producer_name - 1)
            }
        };
        self.producers
            .insert((connection, producer.producer_id), topic);
        Ok(commands::producer_success(producer.request_id, &name))
    }

    fn send(
        &mut self,
        connection: u64,
        send: CommandSend,
        payload: Option<Payload>,
        out: &mut Vec<Outbound>,
    ) {
        match self.store(connection, send.producer_id, payload) {
            Ok((topic, message_id)) => {
                out.push((
                    connection,
                    commands::send_receipt(send.producer_id, send.sequence_id, message_id),
                ));
                self.dispatch(&topic, out);
            }
            Err(error) => out.push((
                connection,
                commands::send_error(send.producer_id, send.sequence_id, &error),
            )),
        }
    }

    fn store(
        &mut self,
        connection: u64,
        producer_id: u64,
        payload: Option<Payload>,
    ) -> Result<(String, MessageIdData)> {
        let topic = self
            .producers
            .get(&(connection, producer_id))
            .ok_or_else(|| Error::NotFound(format!("producer {producer_id}")))?
            .clone();
        let payload = payload.ok_or_else(|| Error::NotAllowed("SEND without payload".into()))?;
        let message_id = self
            .topics
            .get_mut(&topic)
            .ok_or_else(|| Error::NotFound(format!("topic {topic}")))?
            .publish(payload.metadata, payload.data);
        Ok((topic, message_id))
    }

    fn subscribe(&mut self, connection: u64, subscribe: CommandSubscribe) -> Result<()> {
        let key = consumer_key(connection, subscribe.consumer_id);
        if subscribe.subscription.is_empty() {
            return Err(Error::NotAllowed("empty subscription name".into()));
        }
        let sub_type = SubType::try_from(subscribe.sub_type)
            .map_err(|_| Error::NotAllowed(format!("subscription type {}", subscribe.sub_type)))?;
        let initial = subscribe
            .initial_position
            .and_then(|position| InitialPosition::try_from(position).ok())
            .unwrap_or(InitialPosition::Latest);
        let topic = self.ensure_topic(&TopicName::parse(&subscribe.topic)?);
        if let Some(existing) = self.consumers.get(&key) {
            return if *existing == (topic, subscribe.subscription) {
                Ok(())
            } else {
                Err(Error::NotAllowed(format!(
                    "consumer id {} is in use on this connection",
                    subscribe.consumer_id
                )))
            };
        }
        self.topics
            .get_mut(&topic)
            .expect("ensure_topic created it")
            .subscribe(
                &subscribe.subscription,
                sub_type,
                key,
                initial,
                subscribe.durable.unwrap_or(true),
            )?;
        self.consumers.insert(key, (topic, subscribe.subscription));
        Ok(())
    }

    fn unsubscribe(&mut self, key: ConsumerKey) -> Result<()> {
        let (topic, subscription) = self
            .consumers
            .get(&key)
            .cloned()
            .ok_or_else(|| Error::NotFound(format!("consumer {}", key.consumer_id)))?;
        if let Some(topic_state) = self.topics.get_mut(&topic) {
            topic_state.unsubscribe(&subscription, key)?;
        }
        self.consumers.remove(&key);
        Ok(())
    }

    /// Removes a consumer; its unacked entries are dispatched to the others.
    fn detach(&mut self, key: ConsumerKey, out: &mut Vec<Outbound>) {
        if let Some((topic, subscription)) = self.consumers.remove(&key) {
            if let Some(topic_state) = self.topics.get_mut(&topic) {
                topic_state.remove_consumer(&subscription, key);
            }
            self.dispatch(&topic, out);
        }
    }

    fn dispatch(&mut self, topic: &str, out: &mut Vec<Outbound>) {
        if self.paused {
            return;
        }
        if let Some(topic_state) = self.topics.get_mut(topic) {
            out.extend(
                topic_state
                    .dispatch()
                    .into_iter()
                    .map(|delivery| (delivery.consumer.connection, commands::message(delivery))),
            );
        }
    }

    /// The topic's full name; creates it (and its tenant and namespace) if it does not exist.
    fn ensure_topic(&mut self, name: &TopicName) -> String {
        let full = name.to_string();
        if !self.topics.contains_key(&full) {
            self.topics
                .insert(full.clone(), Topic::new(self.next_ledger));
            self.next_ledger += 1;
            self.tenants
                .entry(name.tenant.clone())
                .or_default()
                .insert(name.namespace.clone());
        }
        full
    }

    // ---- admin ----

    /// Creates a tenant.
    pub fn create_tenant(&mut self, tenant: &str) -> Result<()> {
        if tenant.is_empty() || tenant.contains('/') {
            return Err(Error::InvalidTopicName(tenant.to_owned()));
        }
        if self.tenants.contains_key(tenant) {
            return Err(Error::Conflict(format!("tenant {tenant:?}")));
        }
        self.tenants.insert(tenant.to_owned(), BTreeSet::new());
        Ok(())
    }

    /// Tenant names.
    pub fn tenants(&self) -> Vec<String> {
        self.tenants.keys().cloned().collect()
    }

    /// Creates a namespace in an existing tenant.
    pub fn create_namespace(&mut self, tenant: &str, namespace: &str) -> Result<()> {
        let namespaces = self
            .tenants
            .get_mut(tenant)
            .ok_or_else(|| Error::NotFound(format!("tenant {tenant:?}")))?;
        if !namespaces.insert(namespace.to_owned()) {
            return Err(Error::Conflict(format!("namespace {tenant}/{namespace}")));
        }
        Ok(())
    }

    /// A tenant's namespaces, as `tenant/namespace`.
    pub fn namespaces(&self, tenant: &str) -> Result<Vec<String>> {
        let namespaces = self
            .tenants
            .get(tenant)
            .ok_or_else(|| Error::NotFound(format!("tenant {tenant:?}")))?;
        Ok(namespaces
            .iter()
            .map(|namespace| format!("{tenant}/{namespace}"))
            .collect())
    }

    /// Creates a persistent topic in an existing namespace.
    pub fn create_topic(&mut self, tenant: &str, namespace: &str, topic: &str) -> Result<()> {
        let name = self.admin_topic_name(tenant, namespace, topic)?;
        if self.topics.contains_key(&name.to_string()) {
            return Err(Error::Conflict(format!("topic {name}")));
        }
        self.ensure_topic(&name);
        Ok(())
    }

    /// The persistent topics of a namespace, full names.
    pub fn topics_of(&self, tenant: &str, namespace: &str) -> Result<Vec<String>> {
        self.check_namespace(tenant, namespace)?;
        let prefix = format!("persistent://{tenant}/{namespace}/");
        Ok(self
            .topics
            .keys()
            .filter(|name| name.starts_with(&prefix))
            .cloned()
            .collect())
    }

    /// Deletes a topic. With producers or consumers attached that needs `force`, which closes
    /// them (they re-create the topic by reconnecting, as with Pulsar's auto-creation).
    pub fn delete_topic(
        &mut self,
        tenant: &str,
        namespace: &str,
        topic: &str,
        force: bool,
    ) -> Result<Vec<Outbound>> {
        let name = self.admin_topic_name(tenant, namespace, topic)?.to_string();
        let consumers = self
            .topics
            .get(&name)
            .ok_or_else(|| Error::NotFound(format!("topic {name}")))?
            .consumers();
        let producers: Vec<(u64, u64)> = self
            .producers
            .iter()
            .filter(|(_, owner)| **owner == name)
            .map(|(key, _)| *key)
            .collect();
        let in_use = !consumers.is_empty() || !producers.is_empty();
        if in_use && !force {
            return Err(Error::NotAllowed(format!(
                "topic {name} has active producers or consumers"
            )));
        }
        let mut out = Vec::new();
        for (connection, producer_id) in producers {
            self.producers.remove(&(connection, producer_id));
            out.push((connection, commands::close_producer(producer_id)));
        }
        for (_, key) in consumers {
            self.consumers.remove(&key);
            out.push((key.connection, commands::close_consumer(key.consumer_id)));
        }
        self.topics.remove(&name);
        Ok(out)
    }

    /// Counters of a topic (any name form clients use), if it exists.
    pub fn topic_stats(&self, topic: &str) -> Option<TopicStats> {
        let name = TopicName::parse(topic).ok()?;
        self.topics.get(&name.to_string()).map(Topic::stats)
    }

    /// Full names of all topics.
    pub fn topic_names(&self) -> Vec<String> {
        self.topics.keys().cloned().collect()
    }

    fn check_namespace(&self, tenant: &str, namespace: &str) -> Result<()> {
        let known = self
            .tenants
            .get(tenant)
            .is_some_and(|namespaces| namespaces.contains(namespace));
        if known {
            Ok(())
        } else {
            Err(Error::NotFound(format!("namespace {tenant}/{namespace}")))
        }
    }

    fn admin_topic_name(&self, tenant: &str, namespace: &str, topic: &str) -> Result<TopicName> {
        self.check_namespace(tenant, namespace)?;
        TopicName::parse(&format!("persistent://{tenant}/{namespace}/{topic}"))
    }
}

fn consumer_key(connection: u64, consumer_id: u64) -> ConsumerKey {
    ConsumerKey {
        connection,
        consumer_id,
    }
}

#[cfg(test)]
mod tests {
    use pulsar::message::proto::{self, base_command::Type};

    use super::*;

    fn frame(command: BaseCommand) -> Message {
        Message {
            command,
            payload: None,
        }
    }

    fn subscribe(consumer_id: u64, sub_type: SubType) -> Message {
        frame(BaseCommand {
            r#type: Type::Subscribe as i32,
            subscribe: Some(proto::CommandSubscribe {
                topic: "t".into(),
                subscription: "s".into(),
                sub_type: sub_type as i32,
                consumer_id,
                request_id: 1,
                initial_position: Some(InitialPosition::Earliest as i32),
                ..Default::default()
            }),
            ..Default::default()
        })
    }

    fn producer_and_send(state: &mut State, connection: u64) -> Vec<Outbound> {
        state.handle(
            connection,
            frame(BaseCommand {
                r#type: Type::Producer as i32,
                producer: Some(CommandProducer {
                    topic: "t".into(),
                    producer_id: 9,
                    request_id: 2,
                    ..Default::default()
                }),
                ..Default::default()
            }),
        );
        state.handle(
            connection,
            Message {
                command: BaseCommand {
                    r#type: Type::Send as i32,
                    send: Some(CommandSend {
                        producer_id: 9,
                        sequence_id: 0,
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                payload: Some(Payload {
                    metadata: Default::default(),
                    data: b"hi".to_vec(),
                }),
            },
        )
    }

    fn flow(consumer_id: u64, permits: u32) -> Message {
        frame(BaseCommand {
            r#type: Type::Flow as i32,
            flow: Some(proto::CommandFlow {
                consumer_id,
                message_permits: permits,
            }),
            ..Default::default()
        })
    }

    #[test]
    fn send_is_receipted_and_pushed_to_the_consumer() {
        let mut state = State::new("pulsar://127.0.0.1:1".into());
        let (producer, consumer) = (state.open_connection(), state.open_connection());
        let subscribed = state.handle(consumer, subscribe(3, SubType::Exclusive));
        assert!(subscribed[0].1.command.success.is_some());
        state.handle(consumer, flow(3, 10));

        let out = producer_and_send(&mut state, producer);
        assert_eq!(out[0].0, producer);
        assert!(out[0].1.command.send_receipt.is_some());
        assert_eq!(out[1].0, consumer);
        assert_eq!(out[1].1.command.message.as_ref().unwrap().consumer_id, 3);
        assert_eq!(out[1].1.payload.as_ref().unwrap().data, b"hi");
        assert_eq!(state.topic_stats("t").unwrap().entries, 1);
    }

    #[test]
    fn closed_connection_hands_its_unacked_entries_to_the_next_consumer() {
        let mut state = State::new("pulsar://127.0.0.1:1".into());
        let (first, second) = (state.open_connection(), state.open_connection());
        state.handle(first, subscribe(0, SubType::Exclusive));
        state.handle(first, flow(0, 10));
        producer_and_send(&mut state, first);

        let busy = state.handle(second, subscribe(0, SubType::Exclusive));
        let error = busy[0].1.command.error.as_ref().unwrap();
        assert_eq!(error.error, proto::ServerError::ConsumerBusy as i32);

        state.close_connection(first);
        state.handle(second, subscribe(0, SubType::Exclusive));
        let out = state.handle(second, flow(0, 10));
        let message = out[0].1.command.message.as_ref().unwrap();
        assert_eq!((out[0].0, message.redelivery_count), (second, Some(1)));
    }

    #[test]
    fn frames_from_a_closed_connection_are_ignored() {
        let mut state = State::new("pulsar://127.0.0.1:1".into());
        let connection = state.open_connection();
        state.close_connection(connection);
        assert!(state
            .handle(connection, subscribe(0, SubType::Shared))
            .is_empty());
        assert!(state.topic_stats("t").is_none());
    }

    #[test]
    fn paused_delivery_holds_messages_until_resumed() {
        let mut state = State::new("pulsar://127.0.0.1:1".into());
        let connection = state.open_connection();
        state.handle(connection, subscribe(0, SubType::Shared));
        state.handle(connection, flow(0, 10));
        assert!(state.set_paused(true).is_empty());
        let out = producer_and_send(&mut state, connection);
        assert_eq!(out.len(), 1, "only the receipt");
        let resumed = state.set_paused(false);
        assert!(resumed[0].1.command.message.is_some());
    }

    #[test]
    fn admin_needs_parents_and_refuses_duplicates() {
        let mut state = State::new("pulsar://127.0.0.1:1".into());
        assert!(matches!(
            state.create_namespace("acme", "chat"),
            Err(Error::NotFound(_))
        ));
        state.create_tenant("acme").unwrap();
        assert!(matches!(
            state.create_tenant("acme"),
            Err(Error::Conflict(_))
        ));
        state.create_namespace("acme", "chat").unwrap();
        state.create_topic("acme", "chat", "pod-0").unwrap();
        assert!(matches!(
            state.create_topic("acme", "chat", "pod-0"),
            Err(Error::Conflict(_))
        ));
        assert_eq!(
            state.topics_of("acme", "chat").unwrap(),
            ["persistent://acme/chat/pod-0"]
        );
        assert_eq!(state.tenants(), ["acme", "public"]);
        assert_eq!(state.namespaces("public").unwrap(), ["public/default"]);
    }

    #[test]
    fn deleting_a_topic_in_use_needs_force_and_closes_its_clients() {
        let mut state = State::new("pulsar://127.0.0.1:1".into());
        let connection = state.open_connection();
        state.handle(connection, subscribe(4, SubType::Exclusive));
        assert!(matches!(
            state.delete_topic("public", "default", "t", false),
            Err(Error::NotAllowed(_))
        ));
        let out = state.delete_topic("public", "default", "t", true).unwrap();
        assert_eq!(
            out[0]
                .1
                .command
                .close_consumer
                .as_ref()
                .unwrap()
                .consumer_id,
            4
        );
        assert!(state.topic_names().is_empty());
        assert!(matches!(
            state.delete_topic("public", "default", "t", false),
            Err(Error::NotFound(_))
        ));
    }
}
