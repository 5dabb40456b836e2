#!/usr/bin/env python3
"""A Kafka client for the tests (confluent-kafka), independent of evq.

    kafka_client.py produce BROKERS TOPIC [--partitions N] [--json] [--offsets]
        Each line of standard input is one message (its value, without the
        newline). With --partitions N, the i-th message (from 0) goes to
        partition i % N; without it, librdkafka's partitioner chooses (by the
        key, when there is one). With --json, each line is a JSON object
        {"value": TEXT, "key": TEXT or null, "partition": N}, "key" and
        "partition" optional, so that a value may hold newlines. An empty
        line (or the end of input) waits until every message so far is
        acknowledged by the broker, then prints {"delivered": COUNT} (with
        --offsets, first one {"i", "partition", "offset"} line per message
        acknowledged since the last such report); the tests use it to
        produce a stream in steps.
    kafka_client.py consume BROKERS TOPIC [--timeout SECONDS]
        Reads every partition of TOPIC from offset 0 to its end (partition
        EOF) and prints one JSON line {"partition", "offset", "key", "value"}
        per message, in partition, then offset order. A fresh random group
        id, no group join (partitions assigned directly), nothing committed.
    kafka_client.py committed BROKERS GROUP TOPIC
        Prints the offsets GROUP has committed on TOPIC's partitions as one
        JSON object {"PARTITION": OFFSET or null}, without joining GROUP.

The broker's high watermarks (ListOffsets) are not used: the tests' broker
answers them wrongly; partition EOF and committed offsets are right.
Exits 1 with a message on standard error when something fails.
"""

import json
import sys
import time
import uuid

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

WAIT = 10.0  # seconds for metadata and for acknowledgements


def fail(message):
    print(f"kafka_client.py: {message}", file=sys.stderr, flush=True)
    sys.exit(1)


def partitions(client, topic):
    """TOPIC's partition numbers, from the broker's metadata."""
    meta = client.list_topics(topic, timeout=WAIT)
    info = meta.topics.get(topic)
    if info is None or info.error is not None:
        fail(f"topic {topic}: {info.error if info else 'not in the metadata'}")
    return sorted(info.partitions)


def text(raw):
    return None if raw is None else raw.decode("utf-8", errors="backslashreplace")


def produce(brokers, topic, args):
    count, as_json, offsets = None, False, False
    while args:
        arg = args.pop(0)
        if arg == "--partitions":
            count = int(args.pop(0))
        elif arg == "--json":
            as_json = True
        elif arg == "--offsets":
            offsets = True
        else:
            fail(f"produce: unknown argument {arg}")
    producer = Producer(
        {
            "bootstrap.servers": brokers,
            # One request at a time per connection: a partition's messages
            # keep the order they were given in, even through a retry.
            "max.in.flight.requests.per.connection": 1,
            "allow.auto.create.topics": False,
            "linger.ms": 5,
        }
    )
    errors, acked = [], []
    sent = 0

    def report(i):
        def on_delivery(err, msg):
            if err is not None:
                errors.append(f"message {i}: {err}")
            else:
                acked.append((i, msg.partition(), msg.offset()))

        return on_delivery

    def flush():
        left = producer.flush(WAIT)
        if left:
            fail(f"{left} messages not acknowledged within {WAIT:.0f} s")
        if errors:
            fail("; ".join(errors[:5]))
        if offsets:
            for i, p, o in sorted(acked):
                print(json.dumps({"i": i, "partition": p, "offset": o}))
        acked.clear()
        print(json.dumps({"delivered": sent}), flush=True)

    for line in sys.stdin.buffer:
        line = line.rstrip(b"\n")
        if not line:
            flush()
            continue
        key, partition = None, None
        if as_json:
            spec = json.loads(line)
            value = spec["value"].encode()
            key = spec.get("key")
            key = None if key is None else key.encode()
            partition = spec.get("partition")
        else:
            value = line
        if partition is None and count is not None:
            partition = sent % count
        kwargs = {"value": value, "key": key, "on_delivery": report(sent)}
        if partition is not None:
            kwargs["partition"] = partition
        while True:
            try:
                producer.produce(topic, **kwargs)
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
        sent += 1
    flush()


def consume(brokers, topic, args):
    timeout = 30.0
    if args[:1] == ["--timeout"]:
        timeout = float(args[1])
    elif args:
        fail(f"consume: unknown argument {args[0]}")
    consumer = Consumer(
        {
            "bootstrap.servers": brokers,
            "group.id": "kafka-client-" + uuid.uuid4().hex,
            "enable.partition.eof": True,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "fetch.wait.max.ms": 50,
        }
    )
    parts = partitions(consumer, topic)
    consumer.assign([TopicPartition(topic, p, 0) for p in parts])
    ended, messages = set(), []
    deadline = time.monotonic() + timeout
    while len(ended) < len(parts):
        if time.monotonic() > deadline:
            left = sorted(set(parts) - ended)
            fail(f"consume {topic}: partitions {left} not at their end after {timeout:.0f} s")
        msg = consumer.poll(0.2)
        if msg is None:
            continue
        if msg.error():
            if msg.error().code() == KafkaError._PARTITION_EOF:
                ended.add(msg.partition())
                continue
            fail(f"consume {topic}: {msg.error()}")
        messages.append((msg.partition(), msg.offset(), text(msg.key()), text(msg.value())))
    consumer.close()
    for p, o, k, v in sorted(messages):
        print(json.dumps({"partition": p, "offset": o, "key": k, "value": v}))


def committed(brokers, group, topic):
    consumer = Consumer(
        {
            "bootstrap.servers": brokers,
            "group.id": group,
            "enable.auto.commit": False,
        }
    )
    parts = partitions(consumer, topic)
    try:
        got = consumer.committed([TopicPartition(topic, p) for p in parts], timeout=WAIT)
    except KafkaException as e:
        fail(f"committed {group} {topic}: {e}")
    out = {}
    for tp in got:
        if tp.error is not None:
            fail(f"committed {group} {topic}/{tp.partition}: {tp.error}")
        out[str(tp.partition)] = tp.offset if tp.offset >= 0 else None
    consumer.close()
    print(json.dumps(out))


def main():
    args = sys.argv[1:]
    if len(args) >= 3 and args[0] == "produce":
        produce(args[1], args[2], args[3:])
    elif len(args) >= 3 and args[0] == "consume":
        consume(args[1], args[2], args[3:])
    elif len(args) == 4 and args[0] == "committed":
        committed(args[1], args[2], args[3])
    else:
        fail(__doc__.strip().split("\n\n")[1])


if __name__ == "__main__":
    main()
