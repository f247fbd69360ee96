package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"

	"aviary.dev/aviary/internal/rollout"
)

// newDemoFlags is `aviary demo flags`: release by flag, judged like a rollout.
func newDemoFlags() *cobra.Command {
	var rps int
	cmd := &cobra.Command{
		Use:   "flags",
		Short: "Run the flags demo: deploy dark, enable for employees, a judged flag rollout, a rollback, the kill switch",
		Long: `demo flags starts a shop upstream on 127.0.0.1 whose new code is behind two flags, and aviary in front
of it evaluating both flags for every request (the variant goes to the upstream in a header). It sends
traffic from a few thousand users, then: defines new-checkout off for everyone (deployed dark); turns
it on for employees by targeting; rolls it out to every user step by step, judged on the gateway's
per-variant measurements; rolls out new-search, whose "on" fails 8% of requests, which the judge
rolls back by itself; and pulls the kill switch on new-checkout. About two minutes.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signalCtx(cmd.Context())
			defer stop()
			return runDemoFlags(ctx, cmd.OutOrStdout(), rps)
		},
	}
	cmd.Flags().IntVar(&rps, "rps", 80, "requests per second sent through the gateway")
	return cmd
}

// demoShop is the upstream: new-search "on" fails 8% of its requests.
func demoShop() (string, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, fmt.Errorf("listen for the demo shop: %w", err)
	}
	var n atomic.Uint64
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(time.Duration(2+rand.IntN(4)) * time.Millisecond)
		if r.Header.Get("X-Flag-New-Search") == "on" && n.Add(1)%25 < 2 {
			w.WriteHeader(http.StatusInternalServerError)
		}
		fmt.Fprintf(w, "checkout=%s search=%s\n", r.Header.Get("X-Flag-New-Checkout"), r.Header.Get("X-Flag-New-Search"))
	})}
	go func() { _ = srv.Serve(ln) }()
	return "http://" + ln.Addr().String(), func() { _ = srv.Close() }, nil
}

const demoFlagsTemplate = `analysis:
  templates:
    - name: demo
      metrics:
        - {name: errors, builtin: errorRate, critical: true, detectableEffect: {ratio: 3, points: 3}}
`

func demoFlagsConfig(shop, release string) string {
	flags := `
      - {key: new-checkout, header: X-Flag-New-Checkout}
      - {key: new-search, header: X-Flag-New-Search}`
	if release != "" {
		flags = `
      - key: new-checkout
        header: X-Flag-New-Checkout
        release: "on"
        strategy: {canary: {steps: [{setWeight: 10}, {analysis: {templates: [demo]}}, {setWeight: 50}, {analysis: {templates: [demo]}}]}}
      - key: new-search
        header: X-Flag-New-Search
        release: ` + release + `
        strategy: {canary: {steps: [{setWeight: 10}, {analysis: {templates: [demo]}}, {setWeight: 50}]}}`
	}
	return fmt.Sprintf(`gateway: {listen: "127.0.0.1:0"}
admin: {listen: "127.0.0.1:0"}
%sservices:
  - name: shop
    stickiness: {header: X-User}
    versions: [{name: v1, endpoints: [%q]}]
    flags:%s
`, demoFlagsTemplate, shop, flags)
}

func runDemoFlags(ctx context.Context, out io.Writer, rps int) error {
	say := func(format string, args ...any) { fmt.Fprintf(out, format+"\n", args...) }
	shop, stopShop, err := demoShop()
	if err != nil {
		return err
	}
	defer stopShop()
	av, err := startDemoAviary(ctx, demoFlagsConfig(shop, ""))
	if err != nil {
		return err
	}
	defer av.stop()
	say("shop on %s; aviary: gateway %s, admin API %s, OFREP %s/ofrep/v1", shop, av.gw, av.admin, av.gw)
	c := &apiClient{base: av.admin, http: &http.Client{}}
	d := &flagsDemo{c: c, gw: av.gw, say: say}
	go (&demoLoad{url: av.gw + "/", rps: rps, users: 3000}).run(av.ctx)

	say("\n== deploy dark: new-checkout and new-search are defined, off for everyone")
	for _, key := range []string{"new-checkout", "new-search"} {
		if err := d.setFlag(ctx, key, nil); err != nil {
			return err
		}
	}
	d.show(ctx, "new-checkout", map[string]string{"targetingKey": "alice", "email": "alice@gmail.com"})
	say("\n== on for employees: new-checkout's targeting gives on to @example.com")
	employees := json.RawMessage(`{"if": [{"ends_with": [{"var": "email"}, "@example.com"]}, "on", null]}`)
	if err := d.setFlag(ctx, "new-checkout", employees); err != nil {
		return err
	}
	d.show(ctx, "new-checkout", map[string]string{"targetingKey": "bob", "email": "bob@example.com"})
	d.show(ctx, "new-checkout", map[string]string{"targetingKey": "alice", "email": "alice@gmail.com"})

	say("\n== release new-checkout to every user: 10%%, analysis, 50%%, analysis (judged on the per-variant measurements)")
	if _, err := c.apply(ctx, "the flag rollout", []byte(demoFlagsConfig(shop, "\"off\""))); err != nil {
		return err
	}
	if err := demoFollow(ctx, out, c, "flag:new-checkout", rollout.Healthy, []string{"errors"}); err != nil {
		return err
	}
	d.show(ctx, "new-checkout", map[string]string{"targetingKey": "alice", "email": "alice@gmail.com"})

	say("\n== release new-search, whose on fails 8%% of requests")
	if _, err := c.apply(ctx, "the flag rollout", []byte(demoFlagsConfig(shop, "\"on\""))); err != nil {
		return err
	}
	if err := demoFollow(ctx, out, c, "flag:new-search", rollout.Degraded, []string{"errors"}); err != nil {
		return err
	}

	say("\n== kill switch: aviary flag disable new-checkout")
	if _, err := c.call(ctx, "disable new-checkout", http.MethodPost, "/api/v1/flags/new-checkout/disable",
		map[string]string{"reason": "the demo pulls the switch"}, new(json.RawMessage)); err != nil {
		return err
	}
	d.show(ctx, "new-checkout", map[string]string{"targetingKey": "alice", "email": "alice@gmail.com"})
	var exp struct {
		Units     int            `json:"units"`
		ByVariant map[string]int `json:"byVariant"`
	}
	if _, err := c.call(ctx, "exposures", http.MethodGet, "/api/v1/flags/new-checkout/exposures?recent=0", nil, &exp); err == nil {
		say("\nexposures kept for experiments: %d users of new-checkout, by variant %v (GET /api/v1/flags/new-checkout/exposures)",
			exp.Units, exp.ByVariant)
	}
	return av.stop()
}

// flagsDemo sets flags through the admin API and evaluates them over OFREP, as an app would.
type flagsDemo struct {
	c   *apiClient
	gw  string
	say func(string, ...any)
}

// setFlag defines key with variants on and off, default off, and the targeting given.
func (d *flagsDemo) setFlag(ctx context.Context, key string, targeting json.RawMessage) error {
	def := map[string]any{"state": "ENABLED", "variants": map[string]bool{"on": true, "off": false}, "defaultVariant": "off"}
	if targeting != nil {
		def["targeting"] = targeting
	}
	_, err := d.c.call(ctx, "set "+key, http.MethodPut, "/api/v1/flags/"+key, def, new(json.RawMessage))
	return err
}

// show evaluates key over OFREP on the gateway's listener and prints the answer.
func (d *flagsDemo) show(ctx context.Context, key string, evalCtx map[string]string) {
	body, _ := json.Marshal(map[string]any{"context": evalCtx})
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, d.gw+"/ofrep/v1/evaluate/flags/"+key, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		d.say("   OFREP %s: %v", key, err)
		return
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	d.say("   OFREP %s for %s: %s", key, evalCtx["email"], bytes.TrimSpace(raw))
}
