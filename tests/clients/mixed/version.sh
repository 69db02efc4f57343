#!/usr/bin/env bash
ck="$(python3 -c "import confluent_kafka as c; print(c.__version__, '(librdkafka', c.libversion()[0] + ')')" 2>/dev/null || echo 'not installed')"
kp="$(python3 -c "import kafka; print(kafka.__version__)" 2>/dev/null || echo 'not installed')"
kjs="$(cd "$(dirname "$0")" && node -e "console.log(require('kafkajs/package.json').version)" 2>/dev/null || echo 'not installed')"
echo "confluent-kafka $ck + kafka-python $kp + kafkajs $kjs"
