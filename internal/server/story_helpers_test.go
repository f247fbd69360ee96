package server_test

// The vocabulary of the stories in story_test.go. A story runs Aviary in-process on a config file
// (server.Run, as the binary does), with real upstreams that answer with their version's name and a
// load goroutine that keeps sending requests; it acts through the admin API as a person or a CI job
// would, and checks what the API reports and what clients get. Nothing here reaches into Aviary's
// internals: a story sees only HTTP.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"aviary.dev/aviary/internal/config"
	"aviary.dev/aviary/internal/polltest"
	"aviary.dev/aviary/internal/rollout"
	"aviary.dev/aviary/internal/server"
	"aviary.dev/aviary/internal/store"
)

// How long a story waits for something that should happen soon, and how often it looks. Every
// story is bounded by these: a story that waits longer fails with what it saw last.
const (
	within   = 5 * time.Second
	pollEach = 20 * time.Millisecond
)

// scenario is one story's world: its config, its upstreams, the running Aviary and the load.
type scenario struct {
	t        *testing.T
	admin    string   // more keys of the admin mapping, e.g. `token: s3cret`
	services []string // the service mappings of the config file, placeholders expanded
	versions map[string]*fakeVersion
	token    string // the bearer token sent with API requests ("" sends none)
	path     string // the config file; the store is aviary.db beside it

	mu sync.Mutex
	av *aviary // the Aviary running now; a restart replaces it
	ld *loadGen
}

// story begins a story. Nothing runs until start.
func story(t *testing.T) *scenario {
	t.Helper()
	return &scenario{t: t, versions: map[string]*fakeVersion{}}
}

// withService adds a service to the config file. The service is a YAML mapping, indented as you
// like; {{v1}} stands for the endpoint list of version v1's upstreams (one upstream), {{v1*3}} for
// three. Upstreams are started on first mention and shared by later ones.
func (s *scenario) withService(yaml string) *scenario {
	s.t.Helper()
	s.services = append(s.services, s.expand(yaml))
	return s
}

// withAdmin adds keys to the admin mapping of the config file, e.g. `token: s3cret`.
func (s *scenario) withAdmin(keys string) *scenario {
	s.admin = keys
	return s
}

// withToken makes the story's API requests carry this bearer token.
func (s *scenario) withToken(token string) *scenario {
	s.token = token
	return s
}

// start writes the config file and runs Aviary on it until the test ends, with a fast controller
// tick. It returns once both listeners accept connections.
func (s *scenario) start() *scenario {
	s.t.Helper()
	s.path = configFile(s.t, s.config())
	s.run()
	return s
}

func (s *scenario) run() {
	s.t.Helper()
	av := run(s.t, s.path, server.Options{TickInterval: 20 * time.Millisecond})
	s.mu.Lock()
	s.av = av
	s.mu.Unlock()
}

// restart stops Aviary (cancels Run's context and waits for it to return) and starts it again on the
// same config file and store.
func (s *scenario) restart() {
	s.t.Helper()
	if err := s.aviary().stop(); err != nil {
		s.t.Fatalf("Run returned %v on stop, want nil", err)
	}
	s.run()
}

func (s *scenario) aviary() *aviary {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.av
}

// config is the config file the story describes.
func (s *scenario) config() string {
	var b strings.Builder
	fmt.Fprintf(&b, "gateway: {listen: \"127.0.0.1:0\"}\nadmin: {listen: \"127.0.0.1:0\"%s}\n", prefixed(", ", s.admin))
	b.WriteString(storyTemplates)
	b.WriteString(servicesYAML(s.services))
	return b.String()
}

func servicesYAML(services []string) string {
	var b strings.Builder
	b.WriteString("services:\n")
	for _, svc := range services {
		b.WriteString(listItem(svc))
	}
	return b.String()
}

// listItem turns a YAML mapping, written indented inside a raw string, into an item of the services
// list. The indentation common to its lines (tabs included, as gofmt indents the test's code) is
// dropped; YAML allows only spaces below that.
func listItem(yaml string) string {
	var lines []string
	indent := -1
	for l := range strings.SplitSeq(yaml, "\n") {
		if strings.TrimSpace(l) == "" {
			continue
		}
		n := len(l) - len(strings.TrimLeft(l, " \t"))
		if indent < 0 || n < indent {
			indent = n
		}
		lines = append(lines, l)
	}
	var b strings.Builder
	for i, l := range lines {
		if i == 0 {
			b.WriteString("  - ")
		} else {
			b.WriteString("    ")
		}
		b.WriteString(l[indent:])
		b.WriteByte('\n')
	}
	return b.String()
}

var placeholder = regexp.MustCompile(`\{\{(\w+)(?:\*(\d+))?\}\}`)

// expand replaces {{version}} and {{version*n}} with the endpoint URLs of the version's upstreams.
func (s *scenario) expand(yaml string) string {
	s.t.Helper()
	return placeholder.ReplaceAllStringFunc(yaml, func(m string) string {
		sub := placeholder.FindStringSubmatch(m)
		n := 1
		if sub[2] != "" {
			n, _ = strconv.Atoi(sub[2])
		}
		return "[" + quoted(s.upstreams(sub[1], n).urls) + "]"
	})
}

// upstreams returns version's upstreams, starting n of them on first use.
func (s *scenario) upstreams(version string, n int) *fakeVersion {
	s.t.Helper()
	if v, ok := s.versions[version]; ok {
		if len(v.urls) != n {
			s.t.Fatalf("{{%s}} has %d upstreams, and a later mention asks for %d", version, len(v.urls), n)
		}
		return v
	}
	v := &fakeVersion{name: version}
	for range n {
		srv := httptest.NewServer(v)
		s.t.Cleanup(srv.Close)
		v.urls = append(v.urls, srv.URL)
	}
	s.versions[version] = v
	return v
}

// fakeVersion is the upstreams of one version. Each answers with the version's name (health checks
// with "ok"), and while the version is failing every one of them answers everything with 503.
type fakeVersion struct {
	name     string
	urls     []string
	failing  atomic.Bool
	served   atomic.Int64 // requests answered, leaving out health checks and mirrored copies
	mirrored atomic.Int64 // mirrored copies received (header X-Aviary-Mirror)
}

func (v *fakeVersion) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case v.failing.Load():
		http.Error(w, v.name+" is failing", http.StatusServiceUnavailable)
		return
	case r.URL.Path == "/healthz":
		_, _ = io.WriteString(w, "ok")
		return
	case r.Header.Get("X-Aviary-Mirror") != "":
		v.mirrored.Add(1)
	default:
		v.served.Add(1)
	}
	_, _ = io.WriteString(w, v.name)
}

// fail makes every upstream of version answer 503, health checks included.
func (s *scenario) fail(version string) { s.version(version).failing.Store(true) }

// heal makes version's upstreams answer again.
func (s *scenario) heal(version string) { s.version(version).failing.Store(false) }

func (s *scenario) version(name string) *fakeVersion {
	s.t.Helper()
	v, ok := s.versions[name]
	if !ok {
		s.t.Fatalf("no upstreams for version %s: mention {{%s}} in a service first", name, name)
	}
	return v
}

// --- the admin API ---

// send sends a request to the admin API with the story's token and returns the status and body.
func (s *scenario) send(method, path, body string) (int, string) {
	s.t.Helper()
	return s.sendAs(s.token, method, path, body)
}

// sendAs sends a request to the admin API with the given bearer token ("" sends none).
func (s *scenario) sendAs(token, method, path, body string) (int, string) {
	s.t.Helper()
	av := s.aviary()
	req, err := http.NewRequest(method, "http://"+av.admin+path, strings.NewReader(body))
	if err != nil {
		s.t.Fatal(err)
	}
	if method != http.MethodGet {
		req.Header.Set("Content-Type", changeType(body)) // as the CLI sends changes
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := av.client.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		s.t.Fatalf("%s %s: read the answer: %v", method, path, err)
	}
	return resp.StatusCode, string(data)
}

// call sends a request that must succeed (200) and decodes its JSON answer into out.
func (s *scenario) call(method, path, body string, out any) {
	s.t.Helper()
	code, got := s.send(method, path, body)
	if code != http.StatusOK {
		s.t.Fatalf("%s %s answered %d, want 200:\n%s", method, path, code, got)
	}
	decodeJSON(s.t, method+" "+path, got, out)
}

func decodeJSON(t *testing.T, what, body string, out any) {
	t.Helper()
	if err := json.Unmarshal([]byte(body), out); err != nil {
		t.Fatalf("%s answered no JSON: %v\n%s", what, err, body)
	}
}

// startRollout asks for version to become the release of service, as `aviary rollout start` does.
func (s *scenario) startRollout(service, version string) rollout.Status {
	s.t.Helper()
	var st rollout.Status
	s.call("POST", "/api/v1/services/"+service+"/rollout", fmt.Sprintf(`{"version": %q}`, version), &st)
	return st
}

// command runs a rollout command (promote, abort, retry, undo...) with a reason, and returns the
// status it answers with: the state right after the command.
func (s *scenario) command(service string, action rollout.CommandKind, reason string) rollout.Status {
	s.t.Helper()
	var st rollout.Status
	body := ""
	if reason != "" {
		body = fmt.Sprintf(`{"reason": %q}`, reason)
	}
	s.call("POST", "/api/v1/services/"+service+"/rollout/"+string(action), body, &st)
	return st
}

func (s *scenario) promote(service string) rollout.Status {
	s.t.Helper()
	return s.command(service, rollout.Promote, "")
}

func (s *scenario) abort(service, reason string) rollout.Status {
	s.t.Helper()
	return s.command(service, rollout.Abort, reason)
}

func (s *scenario) retry(service string) rollout.Status {
	s.t.Helper()
	return s.command(service, rollout.Retry, "")
}

func (s *scenario) undo(service string) rollout.Status {
	s.t.Helper()
	return s.command(service, rollout.Undo, "")
}

// status is GET /api/v1/services/{service}/rollout.
func (s *scenario) status(service string) rollout.Status {
	s.t.Helper()
	var st rollout.Status
	s.call("GET", "/api/v1/services/"+service+"/rollout", "", &st)
	return st
}

// cond is something a rollout status should come to show.
type cond struct {
	what  string
	holds func(rollout.Status) bool
}

func step(i int) cond {
	return cond{fmt.Sprintf("step %d", i), func(st rollout.Status) bool { return st.CurrentStepIndex == i }}
}

func canaryWeight(w int) cond {
	return cond{fmt.Sprintf("canary weight %d", w), func(st rollout.Status) bool { return st.CanaryWeight == w }}
}

func stable(v string) cond {
	return cond{"stable " + v, func(st rollout.Status) bool { return st.StableVersion == v }}
}

// waitFor polls the rollout status until it is in phase and every cond holds, and returns it; it
// fails the story with the last status seen when that does not happen within a few seconds.
func (s *scenario) waitFor(service string, phase rollout.Phase, conds ...cond) rollout.Status {
	s.t.Helper()
	want := []string{"phase " + string(phase)}
	for _, c := range conds {
		want = append(want, c.what)
	}
	var st rollout.Status
	if !polltest.Until(within, pollEach, func() bool {
		st = s.status(service)
		return st.Phase == phase && allHold(st, conds)
	}) {
		s.t.Fatalf("%s: still waiting after %s for %s; the rollout is at:\n%s",
			service, within, strings.Join(want, ", "), pretty(st))
	}
	return st
}

// expectStatus fails the story unless the status is in phase and every cond holds.
func (s *scenario) expectStatus(st rollout.Status, phase rollout.Phase, conds ...cond) {
	s.t.Helper()
	if st.Phase != phase || !allHold(st, conds) {
		want := []string{"phase " + string(phase)}
		for _, c := range conds {
			want = append(want, c.what)
		}
		s.t.Fatalf("%s: want %s; the rollout is at:\n%s", st.Service, strings.Join(want, ", "), pretty(st))
	}
}

func allHold(st rollout.Status, conds []cond) bool {
	for _, c := range conds {
		if !c.holds(st) {
			return false
		}
	}
	return true
}

func pretty(v any) string {
	b, _ := json.MarshalIndent(v, "", "  ")
	return string(b)
}

// served is GET /api/v1/services/{service}: what the gateway serves now.
func (s *scenario) served(service string) serviceStatus {
	s.t.Helper()
	var got serviceStatus
	s.call("GET", "/api/v1/services/"+service, "", &got)
	return got
}

// expectWeights fails the story unless the gateway serves service with these weights. A version the
// gateway does not serve at all counts as weight 0; a served version left out of want must be at 0.
func (s *scenario) expectWeights(service string, want map[string]int) {
	s.t.Helper()
	svc := s.served(service)
	got := map[string]int{}
	for _, v := range svc.Versions {
		got[v.Name] = v.Weight
	}
	for name, w := range want {
		if got[name] != w {
			s.t.Fatalf("%s is served with weights %v, want %v", service, got, want)
		}
	}
	for name, w := range got {
		if _, ok := want[name]; !ok && w != 0 {
			s.t.Fatalf("%s is served with weights %v, want %v", service, got, want)
		}
	}
}

// waitHealthy waits until the gateway sees every endpoint of version available.
func (s *scenario) waitHealthy(service, version string) {
	s.t.Helper()
	var last serviceStatus
	if !polltest.Until(within, pollEach, func() bool {
		last = s.served(service)
		return slices.ContainsFunc(last.Versions, func(v versionStatus) bool {
			return v.Name == version && len(v.Endpoints) > 0 && v.Healthy == len(v.Endpoints)
		})
	}) {
		s.t.Fatalf("still waiting after %s for every endpoint of %s to be healthy; the gateway serves:\n%s", within, version, pretty(last))
	}
}

// events is GET /api/v1/events?service=...: the recorded events, oldest first.
func (s *scenario) events(service string) []rollout.Event {
	s.t.Helper()
	var got struct {
		Events []rollout.Event `json:"events"`
	}
	s.call("GET", "/api/v1/events?service="+service, "", &got)
	return got.Events
}

// history is GET /api/v1/services/{service}/history.
func (s *scenario) history(service string) []store.HistoryEntry {
	s.t.Helper()
	var got struct {
		History []store.HistoryEntry `json:"history"`
	}
	s.call("GET", "/api/v1/services/"+service+"/history", "", &got)
	return got.History
}

// apply sends services (YAML mappings with placeholders, as withService takes them) to
// POST /api/v1/apply, as `aviary apply -f` does.
func (s *scenario) apply(services ...string) (applied []string) {
	s.t.Helper()
	for i := range services {
		services[i] = s.expand(services[i])
	}
	var res struct {
		Applied []string `json:"applied"`
	}
	s.call("POST", "/api/v1/apply", servicesYAML(services), &res)
	return res.Applied
}

// editConfig rewrites the config file with these services in place of the story's, the way an editor
// or config management replaces a file. Aviary does not watch the file here; reload asks it to look.
func (s *scenario) editConfig(services ...string) {
	s.t.Helper()
	s.services = nil
	for _, svc := range services {
		s.services = append(s.services, s.expand(svc))
	}
	replaceFile(s.t, s.path, s.config())
}

// reload is POST /api/v1/config/reload.
func (s *scenario) reload() (int, reloadResult) {
	s.t.Helper()
	code, body := s.send("POST", "/api/v1/config/reload", "")
	var res reloadResult
	decodeJSON(s.t, "POST /api/v1/config/reload", body, &res)
	return code, res
}

// --- clients of the gateway ---

// requestOption shapes a client's request.
type requestOption func(*http.Request)

// header sends a request header.
func header(name, value string) requestOption {
	return func(r *http.Request) { r.Header.Set(name, value) }
}

// ask sends GET / to the gateway and returns who answered: the version's name on a 200, or what went
// wrong.
func ask(client *http.Client, gateway string, opts ...requestOption) string {
	req, err := http.NewRequest("GET", "http://"+gateway+"/", nil)
	if err != nil {
		return "error: " + err.Error()
	}
	for _, o := range opts {
		o(req)
	}
	resp, err := client.Do(req)
	if err != nil {
		return "error: " + err.Error()
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	switch {
	case err != nil:
		return "error: " + err.Error()
	case resp.StatusCode != http.StatusOK:
		return fmt.Sprintf("%d %s", resp.StatusCode, strings.TrimSpace(string(body)))
	}
	return string(body)
}

// expectAnswered sends 20 new requests to the gateway and fails the story unless version answers
// every one.
func (s *scenario) expectAnswered(version string, opts ...requestOption) {
	s.t.Helper()
	av := s.aviary()
	got := map[string]int{}
	for range 20 {
		got[ask(av.client, av.gateway, opts...)]++
	}
	if len(got) != 1 || got[version] != 20 {
		s.t.Fatalf("20 requests were answered by %v, want %s alone", got, version)
	}
}

// load starts a client that sends requests to the gateway one after another, with a short pause,
// until the story ends (or for 20 s at most), recording who answered each one and when it was sent.
func (s *scenario) load() {
	s.t.Helper()
	s.ld = &loadGen{stop: make(chan struct{}), done: make(chan struct{}),
		client: &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{}}}
	go s.ld.run(func() string { return s.aviary().gateway })
	s.t.Cleanup(s.ld.end)
}

// answered counts who answered the load's requests so far: version names, or what went wrong.
func (s *scenario) answered() map[string]int {
	s.t.Helper()
	return s.answeredSince(time.Time{})
}

// answeredSince counts who answered the load's requests sent at or after t.
func (s *scenario) answeredSince(t time.Time) map[string]int {
	s.t.Helper()
	if s.ld == nil {
		s.t.Fatal("no load: call load() first")
	}
	return s.ld.since(t)
}

// loadGen is the load's client; a named type for readable stack traces.
type loadGen struct {
	client *http.Client
	stop   chan struct{}
	done   chan struct{}
	once   sync.Once

	mu      sync.Mutex
	answers []answer
}

type answer struct {
	sent time.Time
	by   string
}

const (
	loadPause = 5 * time.Millisecond
	loadLimit = 20 * time.Second
	loadMax   = 20000 // answers kept
)

func (l *loadGen) run(gateway func() string) {
	defer close(l.done)
	deadline := time.After(loadLimit)
	for {
		select {
		case <-l.stop:
			return
		case <-deadline:
			return
		case <-time.After(loadPause):
		}
		sent := time.Now()
		by := ask(l.client, gateway())
		l.mu.Lock()
		if len(l.answers) < loadMax {
			l.answers = append(l.answers, answer{sent, by})
		}
		l.mu.Unlock()
	}
}

func (l *loadGen) since(t time.Time) map[string]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[string]int{}
	for _, a := range l.answers {
		if !a.sent.Before(t) {
			out[a.by]++
		}
	}
	return out
}

func (l *loadGen) end() {
	l.once.Do(func() { close(l.stop) })
	<-l.done
	l.client.CloseIdleConnections()
}

// --- the live event stream ---

// sseFrame is one server-sent event as it came over the wire.
type sseFrame struct {
	id    string
	event string
	data  rollout.Event
	raw   string // the frame's lines
}

// eventStream is an open GET /api/v1/events/stream.
type eventStream struct {
	t      *testing.T
	frames chan sseFrame
	cancel context.CancelFunc
	done   chan struct{}
}

// stream opens the live event stream of service, from after lastEventID when it is not empty.
func (s *scenario) stream(service, lastEventID string) *eventStream {
	s.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, "GET", "http://"+s.aviary().admin+"/api/v1/events/stream?service="+service, nil)
	if err != nil {
		s.t.Fatal(err)
	}
	if lastEventID != "" {
		req.Header.Set("Last-Event-ID", lastEventID)
	}
	if s.token != "" {
		req.Header.Set("Authorization", "Bearer "+s.token)
	}
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		cancel()
		s.t.Fatalf("GET /api/v1/events/stream: %v", err)
	}
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		resp.Body.Close()
		cancel()
		s.t.Fatalf("GET /api/v1/events/stream answered %d %s, want 200 text/event-stream", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	es := &eventStream{t: s.t, frames: make(chan sseFrame, 256), cancel: cancel, done: make(chan struct{})}
	go es.read(ctx, resp.Body)
	s.t.Cleanup(es.close)
	return es
}

// read splits the stream into frames until it ends; comments (pings) are skipped.
func (es *eventStream) read(ctx context.Context, body io.ReadCloser) {
	defer close(es.done)
	defer close(es.frames)
	defer body.Close()
	sc := bufio.NewScanner(body)
	var f sseFrame
	var lines []string
	for sc.Scan() {
		line := sc.Text()
		if line != "" {
			lines = append(lines, line)
			field, value, _ := strings.Cut(line, ": ")
			switch field {
			case "id":
				f.id = value
			case "event":
				f.event = value
			case "data":
				_ = json.Unmarshal([]byte(value), &f.data)
			}
			continue
		}
		if f.id != "" || f.event != "" {
			f.raw = strings.Join(lines, "\n")
			select {
			case es.frames <- f:
			case <-ctx.Done():
				return
			}
		}
		f, lines = sseFrame{}, nil
	}
}

// until reads frames until one of kind arrives, and returns every frame read, that one last.
func (es *eventStream) until(kind config.EventKind) []sseFrame {
	es.t.Helper()
	var got []sseFrame
	timeout := time.After(within)
	for {
		select {
		case f, ok := <-es.frames:
			if !ok {
				es.t.Fatalf("the event stream ended before a %s event; it sent %s", kind, kinds(got))
			}
			got = append(got, f)
			if f.data.Kind == kind {
				return got
			}
		case <-timeout:
			es.t.Fatalf("no %s event on the stream within %s; it sent %s", kind, within, kinds(got))
		}
	}
}

// close disconnects, as a client that goes away does.
func (es *eventStream) close() {
	es.cancel()
	<-es.done
}

func kinds(frames []sseFrame) []string {
	out := make([]string, len(frames))
	for i, f := range frames {
		out[i] = string(f.data.Kind)
	}
	return out
}

// storyTemplates defines the analysis templates the stories name.
const storyTemplates = `
analysis:
  templates:
    - {name: a, metrics: [{name: errors, builtin: errorRate}]}
    - {name: b, metrics: [{name: errors, builtin: errorRate}]}
    - {name: bg, metrics: [{name: errors, builtin: errorRate}]}
    - {name: diff, metrics: [{name: errors, builtin: errorRate}]}
    - {name: e, metrics: [{name: errors, builtin: errorRate}]}
    - {name: error-rate, metrics: [{name: errors, builtin: errorRate}]}
    - {name: errors, metrics: [{name: errors, builtin: errorRate}]}
    - {name: latency, metrics: [{name: errors, builtin: errorRate}]}
    - {name: smoke, metrics: [{name: errors, builtin: errorRate}]}
    - {name: slo, metrics: [{name: errors, builtin: errorRate}]}
`

// changeType is the content type the CLI sends a body with: YAML for a file to apply, else JSON.
func changeType(body string) string {
	if b := strings.TrimSpace(body); b == "" || strings.HasPrefix(b, "{") {
		return "application/json"
	}
	return "application/yaml"
}
