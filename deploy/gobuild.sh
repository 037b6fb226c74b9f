#!/bin/sh
# The one build command of the release binaries: static (CGO_ENABLED=0),
# reproducible paths (-trimpath), stripped, with the version and commit
# stamped. The Makefile's build target and the Dockerfile both run this
# script, so a binary built here and one built in the image are the same.
#
#   deploy/gobuild.sh OUTDIR [PACKAGE...]     (default: all three commands)
#
# VERSION and COMMIT come from the environment, else from git.
set -eu
out=${1:?usage: gobuild.sh OUTDIR [PACKAGE...]}
shift
[ $# -gt 0 ] || set -- ./cmd/enqueue ./cmd/worker ./cmd/tenantsim
version=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
commit=${COMMIT:-$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)}
pkg=github.com/msaudit/msaudit/internal/version
mkdir -p "$out"
CGO_ENABLED=0 exec "${GO:-go}" build -trimpath \
  -ldflags "-s -w -X $pkg.Version=$version -X $pkg.Commit=$commit" \
  -o "$out/" "$@"
