#!/usr/bin/env bash
st() { dpkg-query -W -f='${Status} ${Version}' "$1" 2>/dev/null | sed -n 's/^install ok installed //p'; }
v="$(st golang-github-confluentinc-confluent-kafka-go-dev)"
[ -n "$v" ] || exit 1
echo "confluent-kafka-go $v (Debian golang-github-confluentinc-confluent-kafka-go-dev), librdkafka $(st librdkafka1), $(go version 2>/dev/null | awk '{print $3}')"
