#!/usr/bin/env bash
# Refresh docs/vendor/mermaid.min.js.gz (and its license) from the npm registry.
# The site ships Mermaid itself so that diagrams render offline (docs/hooks/site.py
# unpacks it into the built site); Material for MkDocs loads Mermaid from a CDN only
# when the page has not loaded it already.
set -euo pipefail
cd "$(dirname "$0")/../vendor"
version="${1:-11}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "mermaid@$version" >/dev/null && tar xzf mermaid-*.tgz)
gzip -9 -n -c "$work/package/dist/mermaid.min.js" >mermaid.min.js.gz
cp "$work/package/LICENSE" mermaid.LICENSE
echo "mermaid $(node -p "require('$work/package/package.json').version") -> $(pwd)/mermaid.min.js.gz"
