package main

// aviary delete service NAME: drop a spec applied through the admin API (DELETE
// /api/v1/services/{name}).

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/spf13/cobra"
)

// deleteResult is the answer of DELETE /api/v1/services/{name}.
type deleteResult struct {
	Deleted  string `json:"deleted"`
	FileSpec bool   `json:"fileSpec"` // the config file's spec is in force now; false: the service is gone
}

// deleteSpec drops the applied spec of svc; force aborts a rollout in flight first.
func (c *apiClient) deleteSpec(ctx context.Context, svc string, force bool) (deleteResult, error) {
	var out deleteResult
	path := servicePath(svc, "")
	if force {
		path += "?force=true"
	}
	op := "delete " + svc
	// The admin API takes changes with a JSON content type only, bodiless ones too.
	raw, err := c.send(ctx, op, http.MethodDelete, path, "application/json", nil)
	if err != nil {
		return out, err
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		return out, fmt.Errorf("%s: the answer of %s is not what this client expects (%w); is the server the same version as the CLI?", op, c.base, err)
	}
	return out, nil
}

func kubeDeleteRefused(o *kubeOptions) error {
	return fmt.Errorf("in Kubernetes mode Rollouts are Kubernetes resources: kubectl delete rollouts.aviary.dev NAME%s deletes one "+
		"(aviary delete service drops a spec applied to aviary serve)", o.nsArg())
}

func newDelete(o *clientOptions) *cobra.Command {
	del := &cobra.Command{
		Use:   "delete",
		Short: "Drop what was applied to a running aviary",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	addKubeFlags(del, true, &o.kube, nsUsage) // only to refuse
	var force bool
	service := &cobra.Command{
		Use:     "service NAME",
		Aliases: []string{"services", "svc"},
		Short:   "Drop the spec of a service applied through the API (aviary apply, aviary rollout start)",
		Long: `Drop the spec of a service that was applied through the admin API. The config file's spec of the
service takes over; a service the file does not have is no longer served. A service that comes from
the config file alone is removed by editing the file. A rollout in flight is refused unless --force,
which aborts it (traffic back to the stable version) and then deletes.`,
		Example: `  aviary delete service shop
  aviary delete service shop --force`,
		Args: oneService,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.refuseInKube(kubeDeleteRefused); err != nil {
				return err
			}
			c, err := o.client()
			if err != nil {
				return err
			}
			res, err := c.deleteSpec(cmd.Context(), args[0], force)
			if err != nil {
				return err
			}
			now := "no longer served"
			if res.FileSpec {
				now = "the config file's spec is in force"
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "deleted the applied spec of %s; %s\n", res.Deleted, now)
			return err
		},
	}
	service.Flags().BoolVar(&force, "force", false, "abort a rollout in flight, then delete")
	del.AddCommand(service)
	return del
}
