#!/usr/bin/env bash
v="$(dpkg-query -W -f='${Status} ${Version}' golang-github-shopify-sarama-dev 2>/dev/null | sed -n 's/^install ok installed //p')"
[ -n "$v" ] || exit 1
echo "Sarama $v (Debian golang-github-shopify-sarama-dev), $(go version 2>/dev/null | awk '{print $3}')"
