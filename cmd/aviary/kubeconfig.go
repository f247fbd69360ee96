package main

// Where the Kubernetes commands find their cluster: the --kubeconfig, --context and -n/--namespace
// flags of `aviary controller` and of the client commands in Kubernetes mode.

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// serviceAccountNamespace is where a pod finds its own namespace.
const serviceAccountNamespace = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

// kubeOptions are the flags that say which cluster, and which namespace in it.
type kubeOptions struct {
	kubeconfig string // --kubeconfig: a kubeconfig file
	context    string // --context: a context of the kubeconfig instead of its current one
	namespace  string // -n/--namespace
	// podNSFile is where a pod reads its namespace ("": serviceAccountNamespace); tests set it.
	podNSFile string
}

// set reports whether a flag asks for Kubernetes mode.
func (o *kubeOptions) set() bool {
	return o.kubeconfig != "" || o.context != "" || o.namespace != ""
}

// addKubeFlags adds --kubeconfig and --context, and -n/--namespace described by nsUsage.
func addKubeFlags(cmd *cobra.Command, persistent bool, o *kubeOptions, nsUsage string) {
	f := cmd.Flags()
	if persistent {
		f = cmd.PersistentFlags()
	}
	f.StringVar(&o.kubeconfig, "kubeconfig", "", "kubeconfig file (default $KUBECONFIG, else the in-cluster config, else ~/.kube/config)")
	f.StringVar(&o.context, "context", "", "the kubeconfig context to use (default its current context)")
	f.StringVarP(&o.namespace, "namespace", "n", "", nsUsage)
}

// noKubeconfig is the advice when no cluster config is found.
const noKubeconfig = "set --kubeconfig or KUBECONFIG to a kubeconfig file, or run in a cluster"

// load finds the cluster's config like controller-runtime does: --kubeconfig, else $KUBECONFIG
// (a list of files, merged), else the in-cluster config (unless --context names a kubeconfig
// context), else ~/.kube/config. namespace is -n, else the context's namespace (in a pod: the
// pod's), else "default".
func (o *kubeOptions) load() (cfg *rest.Config, namespace string, err error) {
	rules, err := o.rules()
	if err != nil {
		return nil, "", err
	}
	if rules == nil { // in a cluster
		cfg, err := rest.InClusterConfig()
		if err != nil {
			return nil, "", fmt.Errorf("read the in-cluster config: %w; %s", err, noKubeconfig)
		}
		return cfg, firstSet(o.namespace, o.podNamespace(), "default"), nil
	}
	where := strings.Join(rules.GetLoadingPrecedence(), string(os.PathListSeparator))
	raw, err := rules.Load()
	if err != nil {
		return nil, "", fmt.Errorf("read kubeconfig %s: %w", where, err)
	}
	cc := clientcmd.NewNonInteractiveClientConfig(*raw, o.context, &clientcmd.ConfigOverrides{}, rules)
	cfg, err = cc.ClientConfig()
	switch {
	case clientcmd.IsEmptyConfig(err):
		return nil, "", fmt.Errorf("kubeconfig %s has no current context: pass --context, or run kubectl config use-context", where)
	case err != nil:
		return nil, "", fmt.Errorf("kubeconfig %s: %w", where, err)
	}
	ns, _, err := cc.Namespace()
	if err != nil {
		return nil, "", fmt.Errorf("kubeconfig %s: %w", where, err)
	}
	return cfg, firstSet(o.namespace, ns, "default"), nil
}

// rules says which kubeconfig files to read; nil means the in-cluster config.
func (o *kubeOptions) rules() (*clientcmd.ClientConfigLoadingRules, error) {
	if o.kubeconfig != "" {
		if _, err := os.Stat(o.kubeconfig); err != nil {
			return nil, fmt.Errorf("--kubeconfig %s: %w; %s", o.kubeconfig, unwrapPath(err), noKubeconfig)
		}
		return &clientcmd.ClientConfigLoadingRules{ExplicitPath: o.kubeconfig}, nil
	}
	if env := os.Getenv(clientcmd.RecommendedConfigPathEnvVar); env != "" {
		files := filepath.SplitList(env)
		for _, f := range files {
			if _, err := os.Stat(f); err == nil {
				// Missing files in the list are skipped, as kubectl does.
				return &clientcmd.ClientConfigLoadingRules{Precedence: files}, nil
			}
		}
		return nil, fmt.Errorf("KUBECONFIG=%s: no such file; %s", env, noKubeconfig)
	}
	if o.context == "" && os.Getenv("KUBERNETES_SERVICE_HOST") != "" {
		return nil, nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return nil, fmt.Errorf("no kubeconfig found (no home directory: %w); %s", err, noKubeconfig)
	}
	file := filepath.Join(home, clientcmd.RecommendedHomeDir, clientcmd.RecommendedFileName)
	if _, err := os.Stat(file); err != nil {
		return nil, fmt.Errorf("no kubeconfig found (%s: %w); %s", file, unwrapPath(err), noKubeconfig)
	}
	return &clientcmd.ClientConfigLoadingRules{ExplicitPath: file}, nil
}

// unwrapPath drops the path and operation of a *fs.PathError: the message names the file already.
func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// podNamespace is the namespace of the pod this runs in, or "" outside a pod.
func (o *kubeOptions) podNamespace() string {
	b, err := os.ReadFile(firstSet(o.podNSFile, serviceAccountNamespace))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}
