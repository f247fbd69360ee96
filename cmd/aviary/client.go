package main

// The admin API client behind get, rollout and apply. It speaks the contract of internal/api
// (JSON in and out, {"error": "..."} on failure, an SSE stream of events) and turns transport and
// status failures into errors that say what to do.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/user"
	"slices"
	"strconv"
	"strings"
	"time"

	"aviary.dev/aviary/internal/rollout"
)

const defaultServer = "http://127.0.0.1:9090"

// requestTimeout bounds one API call; the event stream has none (its context ends it).
const requestTimeout = 30 * time.Second

// maxResponse bounds what the client reads of one answer.
const maxResponse = 32 << 20

// clientOptions are the root's --server and --token flags and what the client commands share.
type clientOptions struct {
	server, token string
	// kube are the flags of Kubernetes mode (kube.go); any of them set chooses it.
	kube kubeOptions
	// watchEvery is how often status --watch reads the status when no event arrives.
	watchEvery time.Duration
}

// client resolves the flags (a flag wins over its environment variable) into an API client.
func (o *clientOptions) client() (*apiClient, error) {
	server := firstSet(o.server, os.Getenv("AVIARY_SERVER"), defaultServer)
	u, err := url.Parse(server)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("--server %q: want the admin API's URL, such as %s", server, defaultServer)
	}
	return &apiClient{
		base:  strings.TrimSuffix(u.String(), "/"),
		token: firstSet(o.token, os.Getenv("AVIARY_TOKEN")),
		http:  &http.Client{},
	}, nil
}

func firstSet(values ...string) string {
	for _, v := range values {
		if v != "" {
			return v
		}
	}
	return ""
}

// apiClient calls one aviary's admin API.
type apiClient struct {
	base  string // scheme://host[:port][/prefix], no trailing slash
	token string // sent as a bearer token when set
	http  *http.Client
}

// apiError is an answer of the API with an error status.
type apiError struct {
	Op      string   // what the client was doing, e.g. "promote shop"
	Status  int      // HTTP status
	Message string   // the server's "error", or the start of a body that is not the API's JSON
	Errors  []string // validation errors (422 from apply), each "path: message"
}

func (e *apiError) Error() string {
	msg := e.Message
	if msg == "" {
		msg = fmt.Sprintf("HTTP %d %s", e.Status, http.StatusText(e.Status))
	}
	hint := func(h string) string {
		if strings.Contains(msg, "AVIARY_TOKEN") {
			return "" // the server said it already
		}
		return "; " + h
	}
	switch e.Status {
	case http.StatusUnauthorized:
		return fmt.Sprintf("%s: not authorized (401: %s)%s", e.Op, msg, hint("set --token or AVIARY_TOKEN"))
	case http.StatusForbidden:
		return fmt.Sprintf("%s: forbidden (403: %s)%s", e.Op, msg, hint("set --token or AVIARY_TOKEN to a token that may do this"))
	}
	if len(e.Errors) > 0 {
		return fmt.Sprintf("%s: %d error(s): %s", e.Op, len(e.Errors), strings.Join(e.Errors, "; "))
	}
	return e.Op + ": " + msg
}

// unreachableError is a request that got no answer at all.
type unreachableError struct {
	Server string
	Err    error
}

func (e *unreachableError) Error() string {
	return fmt.Sprintf("cannot reach aviary at %s: %v; is \"aviary serve\" running? set --server or AVIARY_SERVER", e.Server, e.Err)
}

func (e *unreachableError) Unwrap() error { return e.Err }

// send makes one request and returns the body of a 2xx answer; any other answer is an *apiError.
// The caller closes nothing: the body is read whole.
func (c *apiClient) send(ctx context.Context, op, method, path, contentType string, body io.Reader) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	resp, err := c.open(ctx, method, path, contentType, "application/json", body)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return nil, fmt.Errorf("%s: read the answer of %s: %w", op, c.base, err)
	}
	if resp.StatusCode/100 != 2 {
		return nil, errorOf(op, resp.StatusCode, raw)
	}
	return raw, nil
}

// open sends a request and returns the response whatever its status.
func (c *apiClient) open(ctx context.Context, method, path, contentType, accept string, body io.Reader) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return nil, fmt.Errorf("request %s %s: %w", method, path, err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Accept", accept)
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	// Who made a change, for the events and the history ("by"): the local user name.
	if u, err := user.Current(); err == nil && u.Username != "" {
		req.Header.Set("X-Aviary-User", u.Username)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if errors.Is(ctx.Err(), context.Canceled) {
			return nil, ctx.Err() // the user stopped: no advice needed
		}
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err // the URL is in the message already
		}
		return nil, &unreachableError{Server: c.base, Err: err}
	}
	return resp, nil
}

// errorOf reads the API's {"error": "..."} or {"errors": [...]}; another body (a proxy's page, a
// server too old for the route) is quoted by its first line.
func errorOf(op string, status int, raw []byte) *apiError {
	e := &apiError{Op: op, Status: status}
	var body struct {
		Error  string   `json:"error"`
		Errors []string `json:"errors"`
	}
	if json.Unmarshal(raw, &body) == nil && (body.Error != "" || len(body.Errors) > 0) {
		e.Message, e.Errors = body.Error, body.Errors
		return e
	}
	line, _, _ := strings.Cut(strings.TrimSpace(string(raw)), "\n")
	if len(line) > 200 {
		line = line[:200] + "..."
	}
	if line != "" {
		e.Message = fmt.Sprintf("HTTP %d: %s", status, line)
	}
	return e
}

// call sends in as JSON (when not nil), decodes a 2xx answer into out and returns it raw too, for -o json.
func (c *apiClient) call(ctx context.Context, op, method, path string, in, out any) ([]byte, error) {
	var body io.Reader
	contentType := ""
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, fmt.Errorf("%s: encode the request: %w", op, err)
		}
		body, contentType = bytes.NewReader(b), "application/json"
	}
	raw, err := c.send(ctx, op, method, path, contentType, body)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return nil, fmt.Errorf("%s: the answer of %s is not what this client expects (%w); is the server the same version as the CLI?", op, c.base, err)
	}
	return raw, nil
}

// serviceInfo is one service of GET /api/v1/services.
type serviceInfo struct {
	Name     string          `json:"name"`
	Stable   string          `json:"stableVersion"`
	Versions []versionInfo   `json:"versions"`
	Rollout  *rollout.Status `json:"rollout,omitempty"` // nil when no release manages the service
}

type versionInfo struct {
	Name      string            `json:"name"`
	Weight    int               `json:"weight"`
	Healthy   int               `json:"healthyEndpoints"`
	Endpoints []json.RawMessage `json:"endpoints"` // counted only
}

// historyEntry is one revision of GET /api/v1/services/{name}/history.
type historyEntry struct {
	Revision      int64     `json:"revision"`
	Time          time.Time `json:"time"`
	Kind          string    `json:"kind"`
	StableVersion string    `json:"stableVersion"`
	CanaryVersion string    `json:"canaryVersion"`
	Reason        string    `json:"reason"`
	By            string    `json:"by"`
}

// applyResult is the answer of POST /api/v1/apply.
type applyResult struct {
	Applied   []string `json:"applied"`
	Unchanged []string `json:"unchanged"`
}

func servicePath(svc, rest string) string { return "/api/v1/services/" + url.PathEscape(svc) + rest }

func (c *apiClient) services(ctx context.Context) ([]serviceInfo, []byte, error) {
	var out struct {
		Services []serviceInfo `json:"services"`
	}
	raw, err := c.call(ctx, "list services", http.MethodGet, "/api/v1/services", nil, &out)
	return out.Services, raw, err
}

func (c *apiClient) status(ctx context.Context, svc string) (rollout.Status, []byte, error) {
	var st rollout.Status
	raw, err := c.call(ctx, "read the rollout of "+svc, http.MethodGet, servicePath(svc, "/rollout"), nil, &st)
	return st, raw, err
}

// startRequest is the body of POST /api/v1/services/{name}/rollout.
type startRequest struct {
	Version   string   `json:"version"`
	Endpoints []string `json:"endpoints,omitempty"`
}

func (c *apiClient) start(ctx context.Context, svc string, req startRequest) (rollout.Status, []byte, error) {
	var st rollout.Status
	raw, err := c.call(ctx, "start a rollout of "+svc, http.MethodPost, servicePath(svc, "/rollout"), req, &st)
	return st, raw, err
}

// actionRequest is the body of POST /api/v1/services/{name}/rollout/{action}.
type actionRequest struct {
	Full   bool   `json:"full,omitempty"`
	Reason string `json:"reason,omitempty"`
}

func (c *apiClient) act(ctx context.Context, svc, action string, req actionRequest) (rollout.Status, []byte, error) {
	var st rollout.Status
	path := servicePath(svc, "/rollout/"+url.PathEscape(action))
	raw, err := c.call(ctx, action+" "+svc, http.MethodPost, path, req, &st)
	return st, raw, err
}

func (c *apiClient) history(ctx context.Context, svc string) ([]historyEntry, []byte, error) {
	var out struct {
		History []historyEntry `json:"history"`
	}
	raw, err := c.call(ctx, "read the history of "+svc, http.MethodGet, servicePath(svc, "/history"), nil, &out)
	return out.History, raw, err
}

// events reads up to limit events of a service after seq (0: from the start), ascending by seq.
// last > 0 asks a server that knows the "last" parameter for the newest last events instead; one
// that does not ignores it.
func (c *apiClient) events(ctx context.Context, svc string, after uint64, limit, last int) ([]rollout.Event, error) {
	q := url.Values{"service": {svc}, "limit": {strconv.Itoa(limit)}}
	if after > 0 {
		q.Set("after", strconv.FormatUint(after, 10))
	}
	if last > 0 {
		q.Set("last", strconv.Itoa(last))
	}
	var out struct {
		Events []rollout.Event `json:"events"`
	}
	_, err := c.call(ctx, "read the events of "+svc, http.MethodGet, "/api/v1/events?"+q.Encode(), nil, &out)
	return out.Events, err
}

// recentEvents returns the last n events of a service: have (the last ones known, maybe none)
// and whatever came after them. It reads forward page by page until a short page, so it finds the
// newest events whether the server answers the first request with the newest (it knows "last") or
// with the oldest.
func (c *apiClient) recentEvents(ctx context.Context, svc string, have []rollout.Event, n int) ([]rollout.Event, error) {
	const page, maxPages = 200, 50
	events := slices.Clone(have)
	for range maxPages {
		var after uint64
		last := n
		if len(events) > 0 {
			after, last = events[len(events)-1].Seq, 0
		}
		got, err := c.events(ctx, svc, after, page, last)
		if err != nil {
			return have, err
		}
		fresh := 0
		for _, e := range got {
			if e.Seq > after || after == 0 {
				events = append(events, e)
				fresh++
			}
		}
		events = events[max(0, len(events)-n):]
		if len(got) < page || fresh == 0 {
			break
		}
	}
	return events, nil
}

// apply sends a config file; a 422 is an *apiError whose Errors list every problem.
func (c *apiClient) apply(ctx context.Context, name string, file []byte) (applyResult, error) {
	var out applyResult
	op := "apply " + name
	raw, err := c.send(ctx, op, http.MethodPost, "/api/v1/apply", "application/yaml", bytes.NewReader(file))
	if err != nil {
		return out, err
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		return out, fmt.Errorf("%s: the answer of %s is not what this client expects (%w)", op, c.base, err)
	}
	return out, nil
}

// stream calls fn with each rollout event of the service's live stream until the stream ends
// (nil) or fails, or ctx is done.
func (c *apiClient) stream(ctx context.Context, svc string, fn func(rollout.Event)) error {
	op := "stream the events of " + svc
	resp, err := c.open(ctx, http.MethodGet, "/api/v1/events/stream?"+url.Values{"service": {svc}}.Encode(), "", "text/event-stream", nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
		return errorOf(op, resp.StatusCode, raw)
	}
	return readSSE(resp.Body, func(id, event, data string) error {
		if event != "" && event != "rollout" {
			return nil // a kind this client does not know yet
		}
		var ev rollout.Event
		if err := json.Unmarshal([]byte(data), &ev); err != nil {
			return fmt.Errorf("%s: event %s is not an event's JSON: %w", op, id, err)
		}
		fn(ev)
		return nil
	})
}

// readSSE parses a text/event-stream and calls fn once per event (id, event type, data lines
// joined by "\n"). Comments (": ping") keep the connection alive and are skipped.
func readSSE(r io.Reader, fn func(id, event, data string) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	var id, event string
	var data []string
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			if len(data) > 0 {
				if err := fn(id, event, strings.Join(data, "\n")); err != nil {
					return err
				}
			}
			event, data = "", data[:0]
			continue
		}
		if strings.HasPrefix(line, ":") {
			continue
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "id":
			id = value
		case "event":
			event = value
		case "data":
			data = append(data, value)
		}
	}
	return sc.Err()
}
