// Package deploy holds no code: its tests check the Kubernetes manifests,
// the Dockerfile and the Grafana dashboard beside it, and build the release
// binaries the images contain.
//
// It is a module of its own so that the Kubernetes, kustomize and KEDA
// modules the tests decode with never enter the product's go.mod:
//
//	cd deploy && go vet ./... && go test ./...
//
// The image test compiles the main module from the repository root with
// deploy/gobuild.sh; -short skips it.
package deploy
