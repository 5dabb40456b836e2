//! What the Kafka source and the Kafka sink share: the `kafka://` address an
//! input, `-o` or `--dead-letter` names, the client settings (`-X`), and how
//! a client's errors are said. The consumer is `source::kafka`, the producer
//! `sink::kafka`; both are built only with the `kafka` feature (on by
//! default). Without it, an address is still recognised, so that the plan
//! can say that this evq was built without Kafka.

use std::time::Duration;

/// The scheme that makes an argument a Kafka address.
pub const SCHEME: &str = "kafka://";

/// How long evq waits for a broker at start (metadata: the topics and
/// their partitions) and for delivery reports at a flush, unless `-X`
/// sets `socket.timeout.ms` or `message.timeout.ms`.
pub const WAIT: Duration = Duration::from_secs(10);

/// `kafka://BROKERS/TOPIC[,TOPIC…]`: the brokers to bootstrap from and the
/// topics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Address {
    /// `host:port[,host:port…]`, as written.
    pub brokers: String,
    pub topics: Vec<String>,
}

impl Address {
    /// Whether `arg` names Kafka rather than a file.
    pub fn is(arg: &str) -> bool {
        arg.starts_with(SCHEME)
    }

    /// Reads `kafka://BROKERS/TOPIC[,TOPIC…]`.
    ///
    /// ```
    /// # use evq::kafka::Address;
    /// let a = Address::parse("kafka://h1:9092,h2:9092/logs,audit").unwrap();
    /// assert_eq!(a.brokers, "h1:9092,h2:9092");
    /// assert_eq!(a.topics, ["logs", "audit"]);
    /// assert!(Address::parse("kafka://h1:9092").is_err());
    /// ```
    pub fn parse(arg: &str) -> Result<Address, String> {
        let rest = arg
            .strip_prefix(SCHEME)
            .ok_or_else(|| format!("{arg}: not a {SCHEME} address"))?;
        let form = "write it kafka://HOST:PORT[,HOST:PORT…]/TOPIC[,TOPIC…]";
        let Some((brokers, topics)) = rest.split_once('/') else {
            return Err(format!("{arg}: no topic ({form})"));
        };
        if brokers.is_empty() || brokers.split(',').any(|b| b.trim().is_empty()) {
            return Err(format!("{arg}: no broker ({form})"));
        }
        let topics: Vec<String> = topics.split(',').map(str::to_string).collect();
        if let Some(bad) = topics.iter().find(|t| !valid_topic(t)) {
            return Err(format!(
                "{arg}: `{bad}` is not a topic name (1 to 249 of a-z A-Z 0-9 . _ -; {form})"
            ));
        }
        Ok(Address {
            brokers: brokers.to_string(),
            topics,
        })
    }

    /// How one partition of `topic` is named in reports, the dead letter
    /// and the stats: `kafka://BROKERS/TOPIC/PARTITION`.
    pub fn partition_name(&self, topic: &str, partition: i32) -> String {
        format!("{SCHEME}{}/{topic}/{partition}", self.brokers)
    }

    /// The address as written, with all its topics.
    pub fn name(&self) -> String {
        format!("{SCHEME}{}/{}", self.brokers, self.topics.join(","))
    }
}

/// Kafka's rule for topic names.
fn valid_topic(topic: &str) -> bool {
    !topic.is_empty()
        && topic.len() <= 249
        && topic != "."
        && topic != ".."
        && topic
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// `-X KEY=VALUE`: a librdkafka property, passed on as given.
pub fn property(arg: &str) -> Result<(String, String), String> {
    match arg.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => {
            Ok((key.trim().to_string(), value.to_string()))
        }
        _ => Err(format!(
            "`{arg}`: write it KEY=VALUE, a librdkafka property"
        )),
    }
}

/// The settings of a client of `brokers`: evq's defaults, then `-X`.
#[cfg(feature = "kafka")]
pub fn client_config(brokers: &str, properties: &[(String, String)]) -> rdkafka::ClientConfig {
    let mut config = rdkafka::ClientConfig::new();
    config.set("bootstrap.servers", brokers);
    // librdkafka's own log lines would interleave with evq's reports; its
    // errors reach evq as results instead.
    config.set("log_level", "3");
    for (key, value) in properties {
        config.set(key, value);
    }
    config
}

/// The wait for a broker at start: `socket.timeout.ms` when `-X` gives it.
pub fn wait(properties: &[(String, String)], key: &str) -> Duration {
    properties
        .iter()
        .rev()
        .find(|(k, _)| k == key)
        .and_then(|(_, v)| v.parse::<u64>().ok())
        .map_or(WAIT, Duration::from_millis)
}

/// The partitions of `address`'s topics, in order, as the brokers say at
/// start: an error names the brokers when none answers within `wait`, and
/// the topic when one does not exist.
#[cfg(feature = "kafka")]
pub fn partitions(
    address: &Address,
    properties: &[(String, String)],
) -> Result<Vec<(String, i32)>, String> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let wait = wait(properties, "socket.timeout.ms");
    let consumer: BaseConsumer = client_config(&address.brokers, properties)
        .create()
        .map_err(|e| format!("{}: {e}", address.name()))?;
    let mut partitions = Vec::new();
    for topic in &address.topics {
        let name = format!("{SCHEME}{}/{topic}", address.brokers);
        let metadata = consumer
            .fetch_metadata(Some(topic), wait)
            .map_err(|e| unreachable_broker(&name, &address.brokers, wait, &e.to_string()))?;
        let numbers = topic_partitions(&metadata, &name, topic)?;
        partitions.extend(numbers.into_iter().map(|p| (topic.clone(), p)));
    }
    Ok(partitions)
}

/// The partitions of `topic` in the brokers' answer `metadata`, in order;
/// the error, for a topic that does not exist (or that the brokers refuse
/// to describe), names the input or output `name`. The one check of the
/// Kafka input and output alike.
#[cfg(feature = "kafka")]
pub fn topic_partitions(
    metadata: &rdkafka::metadata::Metadata,
    name: &str,
    topic: &str,
) -> Result<Vec<i32>, String> {
    use rdkafka::types::RDKafkaErrorCode;
    let missing = || format!("{name}: topic {topic} does not exist");
    let Some(found) = metadata.topics().iter().find(|t| t.name() == topic) else {
        return Err(missing());
    };
    if let Some(error) = found.error() {
        return Err(match RDKafkaErrorCode::from(error) {
            RDKafkaErrorCode::UnknownTopicOrPartition | RDKafkaErrorCode::UnknownTopic => missing(),
            other => format!("{name}: topic {topic}: {}", describe(other)),
        });
    }
    if found.partitions().is_empty() {
        return Err(missing());
    }
    let mut numbers: Vec<i32> = found.partitions().iter().map(|p| p.id()).collect();
    numbers.sort_unstable();
    Ok(numbers)
}

/// A librdkafka error code as evq says it: its description alone
/// (`Local: Message timed out`, not `MessageTimedOut (Local: Message timed
/// out)`).
#[cfg(feature = "kafka")]
pub fn describe(code: rdkafka::types::RDKafkaErrorCode) -> String {
    let text = code.to_string();
    match (text.find(" ("), text.ends_with(')')) {
        (Some(at), true) => text[at + 2..text.len() - 1].to_string(),
        _ => text,
    }
}

/// The message for brokers that did not answer.
#[cfg(feature = "kafka")]
fn unreachable_broker(name: &str, brokers: &str, wait: Duration, error: &str) -> String {
    format!(
        "{name}: cannot reach broker {brokers} within {} s ({error}; -X socket.timeout.ms=MS waits longer)",
        wait.as_secs_f64()
    )
}
