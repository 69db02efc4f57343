#!/usr/bin/env bash
python3 -c "import kafka; print('kafka-python', kafka.__version__)"
