#!/usr/bin/env bash
set -euo pipefail
python3 -m pip install --quiet --disable-pip-version-check confluent-kafka==2.16.1
