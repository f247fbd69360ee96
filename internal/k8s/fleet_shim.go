package k8s

import "aviary.dev/aviary/internal/k8s/api/v1alpha1"

// Until the fleet-gw branch (spec.trafficRouting.aviary) is merged: no Rollout names a gateway.
func gatewayName(*v1alpha1.Rollout) string { return "" }

// GatewayServiceName is the name a gateway replica serves a Rollout under (fleet-gw's convert.go).
func GatewayServiceName(namespace, name string) string { return name + "." + namespace }
