#!/usr/bin/env bash
python3 -c "import aiokafka; print('aiokafka', aiokafka.__version__)"
