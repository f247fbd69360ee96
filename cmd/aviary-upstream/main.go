// Command aviary-upstream is the project's small test upstream: a fast HTTP
// server that answers every request with a fixed body and says who it is, so
// gateway tests and benchmarks can see which version served a request and how
// many requests each version received.
//
// Endpoints:
//
//	/          any method: 200 with the fixed body (the request body is drained)
//	GET  /healthz  200 "OK" (or --healthz-status)
//	GET  /__stats  {"name": ..., "requests": N}; N counts every request except
//	               /__stats and /healthz
//	POST /__reset  zeroes the counter
//
// It must stay cheap enough to never be the bottleneck of a benchmark: no
// logging per request, no allocation per request beyond what net/http does,
// and keep-alive left on.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"
)

// Behaviour flags for playing a broken version (set once, before serving).
var (
	healthStatus = http.StatusOK
	errorPercent float64
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to listen on (port 0 picks a free port)")
	name := flag.String("name", "v1", "name returned in the X-Aviary-Upstream header and in the body")
	bodyBytes := flag.Int("body-bytes", 64, "size of the fixed response body in bytes")
	portFile := flag.String("port-file", "", "if set, write the bound address (host:port) to this file")
	flag.IntVar(&healthStatus, "healthz-status", http.StatusOK, "status /healthz answers (e.g. 503 to play a broken version)")
	flag.Float64Var(&errorPercent, "error-percent", 0, "share of requests to / answered with 500, in percent (a version with a regression)")
	flag.Parse()

	if err := run(*listen, *name, *bodyBytes, *portFile); err != nil {
		fmt.Fprintf(os.Stderr, "aviary-upstream: %v\n", err)
		os.Exit(1)
	}
}

func run(listen, name string, bodyBytes int, portFile string) error {
	if bodyBytes < 0 {
		return fmt.Errorf("--body-bytes %d: must be >= 0", bodyBytes)
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", listen, err)
	}
	if portFile != "" {
		// Write to a temporary file and rename, so a script polling for the
		// file never reads a half-written address.
		tmp := portFile + ".tmp"
		if err := os.WriteFile(tmp, []byte(ln.Addr().String()+"\n"), 0o644); err != nil {
			return fmt.Errorf("write port file %s: %w", portFile, err)
		}
		if err := os.Rename(tmp, portFile); err != nil {
			return fmt.Errorf("write port file %s: %w", portFile, err)
		}
	}

	srv := &http.Server{
		Handler:           newUpstream(name, bodyBytes),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       5 * time.Minute,
	}
	go stopOnSignal(srv)
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve on %s: %w", ln.Addr(), err)
	}
	return nil
}

// stopOnSignal closes the server on SIGINT or SIGTERM so that scripts can
// stop it by PID and it exits with status 0.
func stopOnSignal(srv *http.Server) {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	<-sig
	_ = srv.Close()
}

// upstream serves the fixed body and counts the requests it served.
type upstream struct {
	name     string
	body     []byte
	requests atomic.Int64

	// Header values built once and shared by every response: net/http only
	// reads them, and building them per request would cost allocations.
	nameHdr, typeHdr, lenHdr []string
}

func newUpstream(name string, bodyBytes int) *upstream {
	body := make([]byte, bodyBytes)
	// The body starts with the name so a human (or a test) reading it knows
	// who answered; the rest is filler up to the requested size.
	n := copy(body, name+"\n")
	for i := n; i < len(body); i++ {
		body[i] = 'x'
	}
	if bodyBytes > 0 && bodyBytes <= len(name) {
		body[len(body)-1] = '\n'
	}
	return &upstream{
		name:    name,
		body:    body,
		nameHdr: []string{name},
		typeHdr: []string{"text/plain"},
		lenHdr:  []string{strconv.Itoa(len(body))},
	}
}

func (u *upstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/healthz":
		if r.Method == http.MethodGet || r.Method == http.MethodHead {
			w.Header().Set("Content-Type", "text/plain")
			w.WriteHeader(healthStatus)
			_, _ = io.WriteString(w, http.StatusText(healthStatus)+"\n")
			return
		}
	case "/__stats":
		if r.Method == http.MethodGet {
			u.serveStats(w)
			return
		}
	case "/__reset":
		if r.Method == http.MethodPost {
			u.requests.Store(0)
			w.WriteHeader(http.StatusNoContent)
			return
		}
	}
	u.serveBody(w, r)
}

func (u *upstream) serveBody(w http.ResponseWriter, r *http.Request) {
	u.requests.Add(1)
	// Drain the request body so the connection can be reused for the next
	// request; net/http only drains a small amount on its own.
	_, _ = io.Copy(io.Discard, r.Body)
	h := w.Header()
	h["X-Aviary-Upstream"] = u.nameHdr
	h["Content-Type"] = u.typeHdr
	h["Content-Length"] = u.lenHdr
	code := http.StatusOK
	// An evenly mixed sequence, not a random draw: exactly errorPercent of every 10,000 requests
	// fail, spread out (6181 is coprime with 10,000, so n*6181 mod 10,000 visits every bucket).
	if errorPercent > 0 && float64(u.requests.Load()*6181%10000) < errorPercent*100 {
		code = http.StatusInternalServerError
	}
	w.WriteHeader(code)
	if r.Method != http.MethodHead {
		_, _ = w.Write(u.body)
	}
}

func (u *upstream) serveStats(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(struct {
		Name     string `json:"name"`
		Requests int64  `json:"requests"`
	}{u.name, u.requests.Load()})
}
