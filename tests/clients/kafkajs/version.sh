#!/usr/bin/env bash
dir="$(cd "$(dirname "$0")/.." && pwd)"
node -e 'const p=require(process.argv[1]+"/node_modules/kafkajs/package.json"); console.log(`kafkajs ${p.version} (node ${process.version})`)' "$dir"
