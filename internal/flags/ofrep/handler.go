package ofrep

import (
	"bytes"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"aviary.dev/aviary/internal/flags"
)

// Flags is the flag set in force and the news of its changes.
type Flags interface {
	Current() *flags.Set
	// Changed is closed when a set other than Current's is in force.
	Changed() <-chan struct{}
}

// Options configure a Handler.
type Options struct {
	// Prefix is the path of the endpoints, without a trailing slash (config flags.ofrep.prefix).
	Prefix    string
	Flags     Flags
	Evaluator *flags.Evaluator
	Auth      Auth
	// CORS answers browsers' preflight requests and lets pages of any origin read the answers
	// (the gateway listener, which web SDKs call). Credentials are headers, never cookies, so any
	// origin may call; the keys decide who may evaluate.
	CORS    bool
	Metrics *Metrics // nil: not measured
	Logger  *slog.Logger
	// Ping is how often an idle change stream gets a comment to keep it open (0: 15 s).
	Ping time.Duration
	// Track, when set, serves POST {prefix}/v1/track (Aviary's, not OFREP's: the experiments'
	// outcome events, api.Track) to whoever may evaluate, and returns the status it answered.
	Track func(http.ResponseWriter, *http.Request) int
}

// Auth says who may evaluate. With no Keys and no Tokens anyone may.
type Auth struct {
	// Keys may evaluate and do nothing else (flags.ofrep.keys).
	Keys []string
	// Tokens may evaluate too: the admin API's tokens, on the admin listener.
	Tokens []string
	// Foreign are credentials valid elsewhere but not here (the admin API's tokens on the gateway
	// listener): refused with 403 and a word on where they belong, rather than 401.
	Foreign []string
}

// Handler serves the OFREP endpoints under a prefix.
type Handler struct {
	o    Options
	mux  *http.ServeMux
	stop chan struct{} // closed by Shutdown: change streams end
	once sync.Once
}

// maxBody bounds a request's body: an evaluation context, not a document.
const maxBody = 64 << 10

// New makes a Handler.
func New(o Options) *Handler {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Ping <= 0 {
		o.Ping = 15 * time.Second
	}
	if o.Evaluator == nil {
		o.Evaluator = &flags.Evaluator{}
	}
	h := &Handler{o: o, mux: http.NewServeMux(), stop: make(chan struct{})}
	p := o.Prefix
	h.mux.HandleFunc("POST "+p+"/v1/evaluate/flags/{key}", h.authed(endpointFlag, h.evaluate))
	h.mux.HandleFunc("POST "+p+"/v1/evaluate/flags", h.authed(endpointBulk, h.bulk))
	h.mux.HandleFunc("GET "+p+"/v1/configuration", h.authed(endpointConfiguration, h.configuration))
	h.mux.HandleFunc("GET "+p+"/v1/changes", h.changes)
	allowed := map[string]string{"/v1/evaluate/flags/{key}": "POST", "/v1/evaluate/flags": "POST",
		"/v1/configuration": "GET", "/v1/changes": "GET"}
	if o.Track != nil {
		h.mux.HandleFunc("POST "+p+"/v1/track", h.authed(endpointTrack, o.Track))
		allowed["/v1/track"] = "POST"
	}
	for path, allow := range allowed {
		h.mux.HandleFunc(p+path, func(w http.ResponseWriter, r *http.Request) {
			h.o.Metrics.request(endpointOther, http.StatusMethodNotAllowed)
			w.Header().Set("Allow", allow)
			writeJSON(w, http.StatusMethodNotAllowed, generalError{Details: fmt.Sprintf("%s %s: this endpoint takes %s", r.Method, r.URL.Path, allow)})
		})
	}
	h.mux.HandleFunc(p+"/", func(w http.ResponseWriter, r *http.Request) {
		h.o.Metrics.request(endpointOther, http.StatusNotFound)
		writeJSON(w, http.StatusNotFound, generalError{Details: fmt.Sprintf("no OFREP endpoint %s %s; the endpoints are POST %s/v1/evaluate/flags[/KEY] and GET %s/v1/configuration",
			r.Method, r.URL.Path, p, p)})
	})
	return h
}

// Shutdown ends the change streams, which would otherwise hold a graceful shutdown of the server
// until its timeout (register it with http.Server.RegisterOnShutdown). Evaluations go on.
func (h *Handler) Shutdown() { h.once.Do(func() { close(h.stop) }) }

// Prefix is the path the handler serves under.
func (h *Handler) Prefix() string { return h.o.Prefix }

// Owns reports whether a request's path is the handler's (the prefix or below it).
func (h *Handler) Owns(path string) bool {
	return path == h.o.Prefix || strings.HasPrefix(path, h.o.Prefix+"/")
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h.o.CORS {
		w.Header().Set("Access-Control-Allow-Origin", "*")
		w.Header().Set("Access-Control-Expose-Headers", "ETag")
		if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
			w.Header().Set("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
			w.Header().Set("Access-Control-Allow-Headers", "Content-Type, Authorization, X-API-Key, If-None-Match")
			w.Header().Set("Access-Control-Max-Age", "600")
			w.WriteHeader(http.StatusNoContent)
			return
		}
	}
	h.mux.ServeHTTP(w, r)
}

// authed wraps an endpoint with the key check.
func (h *Handler) authed(ep endpoint, next func(http.ResponseWriter, *http.Request) int) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if code, msg := h.o.Auth.check(r); code != 0 {
			h.o.Metrics.request(ep, code)
			writeJSON(w, code, generalError{Details: msg})
			return
		}
		h.o.Metrics.request(ep, next(w, r))
	}
}

// check returns 0 when the request may evaluate, else the status and what to do.
func (a Auth) check(r *http.Request) (int, string) {
	if len(a.Keys) == 0 && len(a.Tokens) == 0 {
		return 0, ""
	}
	given := strings.TrimSpace(r.Header.Get("X-API-Key"))
	if given == "" {
		scheme, token, _ := strings.Cut(strings.TrimSpace(r.Header.Get("Authorization")), " ")
		if strings.EqualFold(scheme, "Bearer") {
			given = strings.TrimSpace(token)
		}
	}
	if given == "" {
		return http.StatusUnauthorized, "evaluating flags here needs a key: send it as X-API-Key or Authorization: Bearer KEY (keys are listed in flags.ofrep.keys)"
	}
	if anyEqual(given, a.Keys) || anyEqual(given, a.Tokens) {
		return 0, ""
	}
	if anyEqual(given, a.Foreign) {
		return http.StatusForbidden, "this is an admin API token: on this listener only the keys of flags.ofrep.keys may evaluate; give the application one of those"
	}
	return http.StatusUnauthorized, "the key is not valid here; use one of flags.ofrep.keys"
}

func anyEqual(given string, keys []string) bool {
	ok := false
	for _, k := range keys {
		if k != "" && subtle.ConstantTimeCompare([]byte(given), []byte(k)) == 1 {
			ok = true
		}
	}
	return ok
}

// request is the body of both evaluation endpoints.
type request struct {
	Context flags.Context `json:"context"`
}

// readBody reads an evaluation request's body, bounded.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
		return nil, fmt.Errorf("the body is over %d KiB; send only the evaluation context", maxBody>>10)
	}
	if err != nil {
		return nil, fmt.Errorf("read the body: %w", err)
	}
	return data, nil
}

// decodeContext reads an evaluation request's context; an empty body is an empty context.
func decodeContext(data []byte) (flags.Context, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return flags.Context{}, nil
	}
	var req request
	if err := json.Unmarshal(data, &req); err != nil {
		return nil, fmt.Errorf(`the body is not an evaluation request {"context": {"targetingKey": "...", ...}}: %v`, err)
	}
	if req.Context == nil {
		req.Context = flags.Context{}
	}
	if tk, ok := req.Context["targetingKey"]; ok {
		if _, isString := tk.(string); !isString {
			return nil, errors.New("context.targetingKey must be a string")
		}
	}
	return req.Context, nil
}

// readContext reads and decodes an evaluation request's context.
func readContext(w http.ResponseWriter, r *http.Request) (flags.Context, error) {
	data, err := readBody(w, r)
	if err != nil {
		return nil, err
	}
	return decodeContext(data)
}

// The shapes of answers (openapi.yaml components.schemas).
type (
	success struct {
		Key      string          `json:"key"`
		Value    json.RawMessage `json:"value,omitempty"` // absent: the code default
		Reason   string          `json:"reason"`
		Variant  string          `json:"variant,omitempty"`
		Metadata map[string]any  `json:"metadata,omitempty"`
	}
	failure struct {
		Key       string         `json:"key,omitempty"`
		ErrorCode string         `json:"errorCode"`
		Details   string         `json:"errorDetails,omitempty"`
		Metadata  map[string]any `json:"metadata,omitempty"`
	}
	generalError struct {
		Details string `json:"errorDetails"`
	}
)

// answer turns a result into the spec's item: a success or a failure.
func answer(res flags.Result) any {
	if res.ErrorCode != "" {
		details := res.ErrorMessage
		if details == "" {
			details = string(res.ErrorCode)
		}
		return failure{Key: res.Key, ErrorCode: string(res.ErrorCode), Details: details, Metadata: res.Metadata}
	}
	s := success{Key: res.Key, Reason: string(res.Reason), Variant: res.Variant, Metadata: res.Metadata}
	if res.Value != nil {
		v, err := json.Marshal(res.Value)
		if err != nil {
			return failure{Key: res.Key, ErrorCode: string(flags.ErrorGeneral), Details: "the variant's value cannot be encoded as JSON: " + err.Error()}
		}
		s.Value = v
	}
	return s
}

func (h *Handler) evaluate(w http.ResponseWriter, r *http.Request) int {
	key := r.PathValue("key")
	ctx, err := readContext(w, r)
	if err != nil {
		return writeJSON(w, http.StatusBadRequest, failure{Key: key, ErrorCode: string(flags.ErrorInvalidCtx), Details: err.Error()})
	}
	set := h.o.Flags.Current()
	res := h.o.Evaluator.Evaluate(set, key, ctx)
	h.o.Metrics.evaluated(set, res)
	switch a := answer(res).(type) {
	case failure:
		code := http.StatusBadRequest
		if a.ErrorCode == string(flags.ErrorFlagNotFound) {
			code = http.StatusNotFound
			a.Details = fmt.Sprintf("flag %q was not found; aviary flag list shows the flags", key)
		}
		return writeJSON(w, code, a)
	default:
		return writeJSON(w, http.StatusOK, a)
	}
}

// bulkAnswer is the bulk endpoint's 200 answer.
type bulkAnswer struct {
	Flags        []any         `json:"flags"`
	EventStreams []eventStream `json:"eventStreams,omitempty"`
}

type eventStream struct {
	Type               string         `json:"type"`
	Endpoint           streamEndpoint `json:"endpoint"`
	InactivityDelaySec int            `json:"inactivityDelaySec,omitempty"`
}

type streamEndpoint struct {
	RequestURI string `json:"requestUri"`
}

func (h *Handler) bulk(w http.ResponseWriter, r *http.Request) int {
	data, err := readBody(w, r)
	if err != nil {
		return writeJSON(w, http.StatusBadRequest, failure{ErrorCode: string(flags.ErrorInvalidCtx), Details: err.Error()})
	}
	set := h.o.Flags.Current()
	etag := bulkETag(set, data)
	w.Header().Set("ETag", etag)
	w.Header().Set("Cache-Control", "no-cache")
	if matches(r.Header.Get("If-None-Match"), etag) {
		// Only a body that was answered with 200 before got this ETag, so it decodes.
		w.WriteHeader(http.StatusNotModified)
		return http.StatusNotModified
	}
	ctx, err := decodeContext(data)
	if err != nil {
		w.Header().Del("ETag")
		return writeJSON(w, http.StatusBadRequest, failure{ErrorCode: string(flags.ErrorInvalidCtx), Details: err.Error()})
	}
	results := h.o.Evaluator.EvaluateAll(set, ctx)
	out := bulkAnswer{Flags: make([]any, len(results)),
		EventStreams: []eventStream{{Type: "sse", Endpoint: streamEndpoint{RequestURI: h.o.Prefix + "/v1/changes"}}}}
	for i, res := range results {
		h.o.Metrics.evaluated(set, res)
		out.Flags[i] = answer(res)
	}
	return writeJSON(w, http.StatusOK, out)
}

// bulkETag names the answer to a bulk request: the set's content and the request's body (its
// context), since the same set evaluates to other values for another user. The body is hashed as
// sent: a client polls with the same bytes, so a poll while nothing changed is answered 304 without
// decoding it; another spelling of the same context only costs one 200.
func bulkETag(set *flags.Set, body []byte) string {
	hash := fnv.New64a()
	_, _ = hash.Write(bytes.TrimSpace(body))
	return fmt.Sprintf(`"%s-%016x"`, strings.Trim(set.ETag(), `"`), hash.Sum64())
}

// matches reports whether an If-None-Match header names etag (RFC 9110, section 13.1.2: weak
// comparison, a list, or *).
func matches(header, etag string) bool {
	for tag := range strings.SplitSeq(header, ",") {
		tag = strings.TrimPrefix(strings.TrimSpace(tag), "W/")
		if tag == "*" || tag == etag {
			return true
		}
	}
	return false
}

// configurationAnswer is OFREP's configuration (service/openapi.yaml before protocol#38 removed
// it; some providers still ask).
var configurationAnswer = map[string]any{
	"name": "aviary",
	"capabilities": map[string]any{
		"cacheInvalidation": map[string]any{"polling": map[string]any{"enabled": true, "minPollingIntervalMs": 1000}},
		"flagEvaluation":    map[string]any{"supportedTypes": []string{"boolean", "string", "int", "float", "object"}},
	},
}

const configurationETag = `"aviary-ofrep-1"`

func (h *Handler) configuration(w http.ResponseWriter, r *http.Request) int {
	w.Header().Set("ETag", configurationETag)
	if matches(r.Header.Get("If-None-Match"), configurationETag) {
		w.WriteHeader(http.StatusNotModified)
		return http.StatusNotModified
	}
	return writeJSON(w, http.StatusOK, configurationAnswer)
}

func writeJSON(w http.ResponseWriter, code int, v any) int {
	data, err := json.Marshal(v)
	if err != nil {
		code, data = http.StatusInternalServerError, []byte(`{"errorDetails":"the answer could not be encoded; see the server's log"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(data)
	return code
}
