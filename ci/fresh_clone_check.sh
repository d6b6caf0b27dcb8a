#!/usr/bin/env bash
# Try the README's two commands as a new user would: on a fresh clone of HEAD,
# with nothing installed by hand. Usage: ci/fresh_clone_check.sh [demo|test|all]
set -euo pipefail
what="${1:-all}"
root="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
git clone --quiet "$root" "$work/clone"
cd "$work/clone"
if [[ "$what" == demo || "$what" == all ]]; then make demo; fi
if [[ "$what" == test || "$what" == all ]]; then make test; fi
