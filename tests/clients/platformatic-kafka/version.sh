#!/usr/bin/env bash
dir="$(cd "$(dirname "$0")/.." && pwd)"
node -e 'const p=require(process.argv[1]+"/node_modules/@platformatic/kafka/package.json"); console.log(`@platformatic/kafka ${p.version} (node ${process.version})`)' "$dir"
