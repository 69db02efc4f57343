#!/usr/bin/env bash
set -euo pipefail
python3 -m pip install --quiet --disable-pip-version-check aiokafka==0.14.0
