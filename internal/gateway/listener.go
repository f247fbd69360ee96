package gateway

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"sync"
)

// Listener wraps the gateway's listener. It keeps at most gateway.maxConnections client connections
// open (beyond, new ones wait in the kernel's accept queue, and the wait is counted), and on plain
// HTTP (plain: no TLS on top) it follows each connection's request framing, so that a request with
// both Content-Length and Transfer-Encoding closes its connection (see framing). Serve with
// ConnContext set to g.ConnContext.
func (g *Gateway) Listener(ln net.Listener, plain bool) net.Listener {
	return &clientListener{Listener: ln, slots: make(chan struct{}, g.maxConns), closed: make(chan struct{}),
		follow: plain, c: g.counters}
}

type clientListener struct {
	net.Listener
	slots     chan struct{} // one per open connection
	closed    chan struct{}
	closeOnce sync.Once
	follow    bool
	c         *counters
}

func (l *clientListener) Accept() (net.Conn, error) {
	select {
	case l.slots <- struct{}{}:
	default:
		l.c.connWaits.Inc()
		select {
		case l.slots <- struct{}{}:
		case <-l.closed:
			return nil, net.ErrClosed
		}
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.slots
		return nil, err
	}
	l.c.conns.Inc()
	cc := &clientConn{Conn: c, l: l}
	if l.follow {
		cc.frames = &framing{}
	}
	return cc, nil
}

func (l *clientListener) Close() error {
	l.closeOnce.Do(func() { close(l.closed) })
	return l.Listener.Close()
}

// clientConn is one client connection: it gives its slot back when closed, and shows what it reads
// to its framing tracker.
type clientConn struct {
	net.Conn
	l        *clientListener
	frames   *framing // nil: not followed
	released sync.Once
}

func (c *clientConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if c.frames != nil && n > 0 {
		c.frames.observe(p[:n])
	}
	return n, err
}

func (c *clientConn) Close() error {
	err := c.Conn.Close()
	c.released.Do(func() {
		c.l.c.conns.Dec()
		<-c.l.slots
	})
	return err
}

// CloseWrite lets net/http half-close a connection after an error answer, so the client reads it.
func (c *clientConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

type framingKey struct{}

// ConnContext gives each request of a connection from Listener its framing tracker: set it as the
// gateway server's http.Server.ConnContext.
func (g *Gateway) ConnContext(ctx context.Context, c net.Conn) context.Context {
	switch c := c.(type) {
	case *clientConn:
		if c.frames != nil {
			return context.WithValue(ctx, framingKey{}, c.frames)
		}
	case *tls.Conn:
		return context.WithValue(ctx, framingKey{}, (*framing)(nil))
	}
	return ctx
}

// closeAfter says whether the connection must close after the response to r (RFC 9112 §6.1: a
// request that carried both Content-Length and Transfer-Encoding). Over TLS the raw headers are out
// of sight, so every HTTP/1 request with a chunked body closes its connection; HTTP/2 frames its
// bodies itself.
func closeAfter(r *http.Request) bool {
	if r.ProtoMajor != 1 {
		return false
	}
	f, ok := r.Context().Value(framingKey{}).(*framing)
	switch {
	case !ok:
		return false // not served from Listener (tests, embedding)
	case f == nil:
		return len(r.TransferEncoding) > 0
	}
	return f.next()
}
