package fakellm

import (
	"compress/gzip"
	"compress/zlib"
	"io"
	"net/http"
	"slices"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/zstd"
)

// Codings are the content codings Options.Compress takes.
var Codings = []string{"gzip", "deflate", "br", "zstd"}

// encoder is a compressor that can push out what it holds, so that a stream's events reach the
// client one by one.
type encoder interface {
	io.WriteCloser
	Flush() error
}

func newEncoder(coding string, w io.Writer) encoder {
	switch coding {
	case "gzip":
		return gzip.NewWriter(w)
	case "deflate":
		return zlib.NewWriter(w) // RFC 9110's deflate is a zlib stream
	case "br":
		return brotli.NewWriter(w)
	case "zstd":
		z, _ := zstd.NewWriter(w, zstd.WithEncoderConcurrency(1)) // no option here can fail
		return z
	}
	panic("fakellm: unknown coding " + coding) // Validate refuses it first
}

// compressWriter compresses an answer whatever the request's Accept-Encoding said, as some servers
// do: the gateway must cope with it.
type compressWriter struct {
	http.ResponseWriter
	coding  string
	enc     encoder
	started bool
}

func (c *compressWriter) WriteHeader(code int) {
	if !c.started {
		c.started = true
		h := c.Header()
		h.Set("Content-Encoding", c.coding)
		h.Del("Content-Length")
		c.enc = newEncoder(c.coding, c.ResponseWriter)
	}
	c.ResponseWriter.WriteHeader(code)
}

func (c *compressWriter) Write(b []byte) (int, error) {
	if !c.started {
		c.WriteHeader(http.StatusOK)
	}
	return c.enc.Write(b)
}

// FlushError flushes the encoder, then the connection (http.ResponseController calls it).
func (c *compressWriter) FlushError() error {
	if c.enc != nil {
		if err := c.enc.Flush(); err != nil {
			return err
		}
	}
	return http.NewResponseController(c.ResponseWriter).Flush()
}

func (c *compressWriter) Unwrap() http.ResponseWriter { return c.ResponseWriter }

// close ends the compressed stream; an answer never started stays empty.
func (c *compressWriter) close() {
	if c.enc != nil {
		_ = c.enc.Close()
	}
}

func validCoding(c string) bool { return c == "" || slices.Contains(Codings, c) }
