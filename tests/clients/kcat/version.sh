#!/usr/bin/env bash
# "Version 1.7.1 (JSON, ..., librdkafka 2.0.2 builtin.features=...)": keep the versions
kcat -V 2>&1 | grep -m1 '^Version' | sed 's/ builtin.*//; s/(.*librdkafka/(librdkafka/; s/$/)/' | sed 's/^/kcat /'
