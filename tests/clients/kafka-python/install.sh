#!/usr/bin/env bash
set -euo pipefail
python3 -m pip install --quiet --disable-pip-version-check kafka-python==3.0.12
