package provider

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/theory/jsonpath"
)

// The "web" provider reads a value from any JSON endpoint. URL, header values, body and jsonPath
// are expanded by Expand (jsonPath too, so that a filter can pick the version measured:
// $.versions[?@.name=="{{version}}"].errorRate). The request is sent with the metric's method
// (GET by default) and bounded by its timeout. A status other than 2xx is an error that quotes
// the status and the start of the body; a body over 1 MiB, or one that is not JSON, is an error.
//
// jsonPath picks the value, in the standard syntax of RFC 9535 ($.a.b, $.a[0], $["key"],
// $.items[?@.name=="v2"].value, …); an empty jsonPath is "$", the whole document. It is evaluated
// by github.com/theory/jsonpath: a complete implementation of the RFC, without dependencies and
// released regularly. Of the others, PaesslerAG/jsonpath has not been released for years,
// ohler55/ojg follows its own dialect of JSONPath, and client-go's is Kubernetes' template
// syntax ({.a.b}) inside a very large module.
//
// The value is as JSON decodes it: a number is float64, a boolean bool, a string string, an
// object map[string]any and an array []any. A path that selects several nodes (a wildcard, a
// filter) gives []float64 when they are all numbers, []any otherwise. A path that selects
// nothing, or null, is an error wrapping ErrNoData, never a zero.
func init() {
	Register("web", func(o Options) Provider { return &webProvider{do: httpDo(o)} })
}

const (
	webMaxBody   = 1 << 20 // a metric is a number or a small document
	webErrorBody = 512     // how much of a failed answer's body an error quotes
)

type webProvider struct {
	do func(*http.Request) (*http.Response, error)
}

func (p *webProvider) Measure(ctx context.Context, q Query) (Measurement, error) {
	w := q.Metric.Web
	if w == nil {
		return Measurement{}, fmt.Errorf("metric %q: no web settings", q.Metric.Name)
	}
	pathText := Expand(w.JSONPath, q)
	path, err := parseJSONPath(pathText)
	if err != nil {
		return Measurement{}, err
	}
	timeout := w.Timeout.Duration
	tctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := webRequest(tctx, w.Method, Expand(w.URL, q), Expand(w.Body, q))
	if err != nil {
		return Measurement{}, err
	}
	for k, v := range w.Headers {
		req.Header.Set(k, Expand(v, q))
	}
	if h := req.Header.Get("Host"); h != "" {
		req.Host = h // net/http sends req.Host, not a Host header
	}
	where := "web " + req.Method + " " + req.URL.Redacted()

	doc, err := p.get(ctx, tctx, timeout, req)
	if err != nil {
		return Measurement{}, fmt.Errorf("%s: %w", where, err)
	}
	v, err := selectValue(path, pathText, doc)
	if err != nil {
		return Measurement{}, fmt.Errorf("%s: %w", where, err)
	}
	return Measurement{Value: v, At: measuredAt(q)}, nil
}

func parseJSONPath(s string) (*jsonpath.Path, error) {
	if strings.TrimSpace(s) == "" {
		s = "$"
	}
	p, err := jsonpath.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("web.jsonPath %q: %w; write an RFC 9535 JSONPath such as $.data[0].value", s, err)
	}
	return p, nil
}

// webRequest builds the request; a body without a Content-Type is sent as JSON (set one in
// web.headers to send something else).
func webRequest(ctx context.Context, method, url, body string) (*http.Request, error) {
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, strings.ToUpper(method), url, r)
	if err != nil {
		return nil, fmt.Errorf("web.url %q: %w; check web.url and web.method", url, err)
	}
	req.Header.Set("Accept", "application/json")
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	return req, nil
}

// get sends req (made with tctx, which ctx is the parent of) and decodes its answer.
func (p *webProvider) get(ctx, tctx context.Context, timeout time.Duration, req *http.Request) (any, error) {
	resp, err := p.do(req)
	if err == nil {
		defer resp.Body.Close()
		var doc any
		if doc, err = decodeAnswer(resp); err == nil {
			return doc, nil
		}
	}
	err = bare(err)
	switch {
	case timedOut(ctx, tctx):
		return nil, fmt.Errorf("no answer within %s (%w); check the endpoint, or raise web.timeout", timeout, err)
	case ctx.Err() != nil:
		return nil, err
	case resp == nil:
		return nil, fmt.Errorf("%w; check web.url and that the endpoint is up", err)
	}
	return nil, err
}

// decodeAnswer reads resp's body as JSON; a status other than 2xx is an error.
func decodeAnswer(resp *http.Response) (any, error) {
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		head, _ := io.ReadAll(io.LimitReader(resp.Body, webErrorBody+1))
		return nil, fmt.Errorf("status %s: %q; check the endpoint and web.headers", resp.Status, snippet(head, webErrorBody))
	}
	raw, err := readLimited(resp.Body, webMaxBody)
	if errors.Is(err, errTooLarge) {
		return nil, fmt.Errorf("%w; point web.url at an endpoint that returns just the metric", err)
	}
	if err != nil {
		return nil, fmt.Errorf("read the answer: %w", err)
	}
	var doc any
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("the answer (%s) is not JSON: %w: %q; point web.url at a JSON endpoint",
			contentType(resp), err, snippet(raw, webErrorBody))
	}
	return doc, nil
}

func contentType(resp *http.Response) string {
	if ct := resp.Header.Get("Content-Type"); ct != "" {
		return "Content-Type " + ct
	}
	return "no Content-Type"
}

// selectValue applies path (as the user wrote it: text) to doc.
func selectValue(path *jsonpath.Path, text string, doc any) (any, error) {
	nodes := path.Select(doc)
	switch len(nodes) {
	case 0:
		return nil, fmt.Errorf("jsonPath %s found %w in the answer; check it against the answer: %s", text, ErrNoData, quoteJSON(doc))
	case 1:
		if nodes[0] == nil {
			return nil, fmt.Errorf("jsonPath %s found null, that is %w; check the endpoint", text, ErrNoData)
		}
		return nodes[0], nil
	}
	nums := make([]float64, 0, len(nodes))
	for _, n := range nodes {
		f, ok := n.(float64)
		if !ok {
			return []any(nodes), nil
		}
		nums = append(nums, f)
	}
	return nums, nil
}

// quoteJSON is the start of doc as JSON, for an error message.
func quoteJSON(doc any) string {
	b, err := json.Marshal(doc)
	if err != nil {
		return fmt.Sprint(doc)
	}
	return snippet(b, webErrorBody)
}
