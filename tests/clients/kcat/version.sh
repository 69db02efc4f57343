#!/usr/bin/env bash
kcat -V 2>&1 | grep -m1 -i "version" | sed 's/^ *//'
