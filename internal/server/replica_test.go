package server

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/client-go/rest"
)

// A replica's services come from the cluster: a config file that names services is refused.
func TestAReplicaRefusesAConfigWithServices(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gateway.yaml")
	cfg := "services:\n  - name: shop\n    versions: [{name: v1, endpoints: [http://127.0.0.1:1]}]\n"
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	err := RunReplica(context.Background(), ReplicaOptions{ConfigPath: path, Kube: &rest.Config{Host: "https://127.0.0.1:1"}, Gateway: "edge"})
	if err == nil || !strings.Contains(err.Error(), "remove services") {
		t.Errorf("RunReplica with services in its config: %v", err)
	}
}
