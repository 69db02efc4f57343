#!/usr/bin/env bash
kcat -V 2>&1 | head -1
