// Package v1alpha1 is the aviary.dev/v1alpha1 API: the Rollout resource of Aviary's Kubernetes
// mode. Its spec carries the same strategy and analysis schema as a standalone service (the field
// names are the config file's), so internal/k8s converts it into the core's config types and
// validates it with the same rules; its status carries the same contract as `aviary rollout
// status` plus Kubernetes conditions, and the core's whole state, from which a restarted
// controller resumes.
//
// The CRD (deploy/crds) and zz_generated.deepcopy.go are generated from these types by
// scripts/k8s-generate.sh (controller-gen); edit the types, then run it.
//
// +kubebuilder:object:generate=true
// +groupName=aviary.dev
package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// GroupVersion is the API's group and version.
var GroupVersion = schema.GroupVersion{Group: "aviary.dev", Version: "v1alpha1"}

var (
	// SchemeBuilder registers the API's types.
	SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)
	// AddToScheme adds the API's types to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

func addKnownTypes(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion, &Rollout{}, &RolloutList{})
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}
