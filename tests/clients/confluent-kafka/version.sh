#!/usr/bin/env bash
python3 -c "import confluent_kafka as c; print('confluent-kafka', c.version()[0], 'librdkafka', c.libversion()[0])"
