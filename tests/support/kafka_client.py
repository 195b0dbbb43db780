#!/usr/bin/env python3
"""An independent Kafka client for the tests: kafka-python speaks the protocol with its
own implementation, so what it produces or reads does not depend on librdkafka.

  kafka_client.py produce BROKERS TOPIC
      reads JSON lines from stdin, each {"key": str or null, "value": str or null,
      "value_hex": hex string (instead of value), "repeat": N (default 1)}, produces
      them in order and waits until every message is acknowledged.
  kafka_client.py consume BROKERS TOPIC COUNT TIMEOUT_SECS
      reads COUNT messages from the beginning of TOPIC and prints each as a JSON line
      {"key", "value_hex", "headers": {name: value}}; exits 1 if fewer arrive in time.
"""
import json
import sys
import time

from kafka import KafkaConsumer, KafkaProducer


def produce(brokers, topic):
    producer = KafkaProducer(
        bootstrap_servers=brokers.split(","),
        acks="all",
        linger_ms=5,
        max_request_size=16 * 1024 * 1024,
    )
    futures = []
    sent = 0
    for line in sys.stdin:
        if not line.strip():
            continue
        spec = json.loads(line)
        key = spec.get("key")
        key = key.encode() if key is not None else None
        if "value_hex" in spec:
            value = bytes.fromhex(spec["value_hex"])
        elif spec.get("value") is not None:
            value = spec["value"].encode()
        else:
            value = None
        for _ in range(spec.get("repeat", 1)):
            futures.append(producer.send(topic, key=key, value=value))
            sent += 1
            if len(futures) >= 10000:
                for f in futures:
                    f.get(timeout=60)
                futures.clear()
    for f in futures:
        f.get(timeout=60)
    producer.flush()
    producer.close()
    print(json.dumps({"produced": sent}))


def consume(brokers, topic, count, timeout):
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=brokers.split(","),
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
        consumer_timeout_ms=1000,
        fetch_max_bytes=32 * 1024 * 1024,
        max_partition_fetch_bytes=16 * 1024 * 1024,
    )
    deadline = time.time() + timeout
    seen = 0
    while seen < count and time.time() < deadline:
        for message in consumer:
            print(json.dumps({
                "key": message.key.decode(errors="replace") if message.key is not None else None,
                "value_hex": (message.value or b"").hex(),
                "headers": {k: (v or b"").decode(errors="replace") for k, v in (message.headers or [])},
            }), flush=True)
            seen += 1
            if seen >= count:
                break
    consumer.close()
    sys.exit(0 if seen >= count else 1)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "produce":
        produce(sys.argv[2], sys.argv[3])
    elif len(sys.argv) == 6 and sys.argv[1] == "consume":
        consume(sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5]))
    else:
        sys.exit(__doc__)
