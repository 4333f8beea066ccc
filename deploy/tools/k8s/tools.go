//go:build tools

// Package tools records the commands scripts/install-k8s builds, so that `go mod tidy`
// keeps their dependencies in go.sum. Never compiled (build tag).
package tools

import (
	_ "go.etcd.io/etcd/server/v3"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
