// Command plainproxy is the "plain Go proxy" reference point of the proxy
// benchmark: the standard library's httputil.ReverseProxy with nothing added
// except a random weighted choice between two upstreams and the two settings
// any serious user of it makes (enough idle upstream connections, pooled copy
// buffers). Whatever Aviary costs above this is the cost of its own features;
// it must never grow features of its own.
package main

import (
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"sync"
	"time"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to listen on")
	a := flag.String("a", "", "URL of the first upstream (gets --weight-a percent)")
	b := flag.String("b", "", "URL of the second upstream")
	weightA := flag.Int("weight-a", 90, "percentage of requests sent to --a (0..100)")
	pooled := flag.Bool("buffer-pool", true, "reuse copy buffers; false shows the cost of ReverseProxy's default")
	flag.Parse()

	if err := run(*listen, *a, *b, *weightA, *pooled); err != nil {
		fmt.Fprintf(os.Stderr, "plainproxy: %v\n", err)
		os.Exit(1)
	}
}

func run(listen, a, b string, weightA int, pooled bool) error {
	if weightA < 0 || weightA > 100 {
		return fmt.Errorf("--weight-a %d: must be 0..100", weightA)
	}
	ua, err := url.Parse(a)
	if err != nil || ua.Host == "" {
		return fmt.Errorf("--a %q: want an absolute URL such as http://127.0.0.1:8081", a)
	}
	ub, err := url.Parse(b)
	if err != nil || ub.Host == "" {
		return fmt.Errorf("--b %q: want an absolute URL such as http://127.0.0.1:8082", b)
	}

	// The default Transport keeps only 2 idle connections per host; under 64
	// concurrent clients almost every request would then open (and leave in
	// TIME_WAIT) a new upstream connection. Raise it to the client count and
	// beyond, as any real proxy must.
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = 1024
	tr.MaxIdleConnsPerHost = 512
	tr.IdleConnTimeout = 90 * time.Second

	proxy := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			target := ub
			if rand.IntN(100) < weightA {
				target = ua
			}
			r.SetURL(target)
			r.SetXForwarded()
		},
		Transport: tr,
	}
	// With a nil BufferPool, ReverseProxy allocates a fresh 32 KiB buffer for
	// every response it copies; on one core that roughly doubled the CPU per
	// request (GC and page faults), which would flatter any proxy compared
	// with this one.
	if pooled {
		proxy.BufferPool = bufferPool{}
	}
	srv := &http.Server{Addr: listen, Handler: proxy, ReadHeaderTimeout: 10 * time.Second}
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve on %s: %w", listen, err)
	}
	return nil
}

// bufferPool lends ReverseProxy its 32 KiB copy buffers. Put still allocates
// a small slice header per call; that is noise next to 32 KiB.
type bufferPool struct{}

var buffers = sync.Pool{New: func() any { b := make([]byte, 32*1024); return &b }}

func (bufferPool) Get() []byte  { return *buffers.Get().(*[]byte) }
func (bufferPool) Put(b []byte) { buffers.Put(&b) }
