#!/usr/bin/env bash
# confluent_kafka.version() is a (str, int) tuple in some builds and a str in others: use __version__.
python3 -c "import confluent_kafka as c; print('confluent-kafka', c.__version__, 'librdkafka', c.libversion()[0])"
