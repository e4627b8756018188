#!/usr/bin/env bash
# Refresh docs/pages/javascripts/mermaid.min.js (and its license) from the npm registry.
# The site ships Mermaid itself so that diagrams render offline: Material for MkDocs
# loads Mermaid from a CDN only when the page has not loaded it already.
set -euo pipefail
cd "$(dirname "$0")/../pages/javascripts"
version="${1:-11}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "mermaid@$version" >/dev/null && tar xzf mermaid-*.tgz)
cp "$work/package/dist/mermaid.min.js" mermaid.min.js
cp "$work/package/LICENSE" mermaid.LICENSE
echo "mermaid $(node -p "require('$work/package/package.json').version") -> $(pwd)/mermaid.min.js"
