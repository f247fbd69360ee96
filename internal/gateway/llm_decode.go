package gateway

import (
	"bufio"
	"compress/flate"
	"compress/gzip"
	"compress/zlib"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/zstd"
)

// Compressed LLM answers. The gateway must read an LLM answer (tokens, model, errors) and, when it
// asked for stream usage the client did not, take a chunk out of it; neither works on compressed
// bytes. So it asks the upstream for identity (askIdentity), which costs nothing on loopback or a
// private network and spares both sides the work of compressing an SSE stream chunk by chunk. An
// upstream that compresses all the same gets its answer decoded here (gzip, deflate, br, zstd) and
// the client receives it decoded, without Content-Encoding: a client may always get identity.

// askIdentity asks the upstream not to compress the answer.
func askIdentity(h http.Header) { h.Set("Accept-Encoding", "identity") }

// contentCodings returns the codings of a Content-Encoding header in the order they were applied,
// without identity; nil when the body is not encoded.
func contentCodings(h http.Header) []string {
	var out []string
	for _, v := range h.Values("Content-Encoding") {
		for _, c := range strings.Split(v, ",") {
			c = strings.ToLower(strings.TrimSpace(c))
			if c != "" && c != "identity" {
				out = append(out, c)
			}
		}
	}
	return out
}

// zstdMaxWindow bounds the memory of a zstd decoder: RFC 9659 limits a zstd content coding's
// window to 8 MiB, so a larger one is refused rather than allocated.
const zstdMaxWindow = 8 << 20

// decoders open a reader of one content coding.
var decoders = map[string]func(io.Reader) (io.Reader, io.Closer, error){
	"gzip":    gzipReader,
	"x-gzip":  gzipReader,
	"deflate": deflateReader,
	"br": func(r io.Reader) (io.Reader, io.Closer, error) {
		return brotli.NewReader(r), nil, nil
	},
	"zstd": func(r io.Reader) (io.Reader, io.Closer, error) {
		d, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true),
			zstd.WithDecoderMaxWindow(zstdMaxWindow))
		if err != nil {
			return nil, nil, err
		}
		return d, closerFunc(d.Close), nil
	},
}

func gzipReader(r io.Reader) (io.Reader, io.Closer, error) {
	z, err := gzip.NewReader(r)
	return z, z, err
}

// deflateReader reads "deflate", which RFC 9110 defines as a zlib stream; some servers send raw
// deflate instead, told apart by the zlib header's checksum.
func deflateReader(r io.Reader) (io.Reader, io.Closer, error) {
	br := bufio.NewReader(r)
	h, err := br.Peek(2)
	if err != nil {
		return nil, nil, err
	}
	if h[0]&0x0f == 8 && (uint16(h[0])<<8|uint16(h[1]))%31 == 0 {
		z, err := zlib.NewReader(br)
		return z, z, err
	}
	f := flate.NewReader(br)
	return f, f, nil
}

type closerFunc func()

func (f closerFunc) Close() error { f(); return nil }

// decodable reports whether every coding can be decoded; the first one that cannot is returned.
func decodable(codings []string) (string, bool) {
	for _, c := range codings {
		if decoders[c] == nil {
			return c, false
		}
	}
	return "", true
}

// decodeBody makes resp's body read decoded, when the upstream compressed it (in spite of
// askIdentity), and drops the headers that described the encoded bytes. It returns the coding it
// cannot decode, if any; the body is then left as it is.
func decodeBody(resp *http.Response) (unknown string) {
	codings := contentCodings(resp.Header)
	if len(codings) == 0 {
		return ""
	}
	if c, ok := decodable(codings); !ok {
		return c
	}
	resp.Body = &decodedBody{raw: resp.Body, codings: codings}
	resp.Header.Del("Content-Encoding")
	resp.Header.Del("Content-Length")
	resp.ContentLength = -1
	resp.Uncompressed = true
	return ""
}

// decodedBody decodes a body as it is read. The decoders open on the first Read, not before: a
// decoder reads the stream's header when it opens, and the answer's headers must not wait for it.
type decodedBody struct {
	raw     io.ReadCloser
	codings []string // in the order applied; decoded from the last
	r       io.Reader
	closers []io.Closer
	err     error
}

func (d *decodedBody) Read(p []byte) (int, error) {
	if d.r == nil && d.err == nil {
		d.err = d.open()
	}
	if d.err != nil {
		return 0, d.err
	}
	return d.r.Read(p)
}

func (d *decodedBody) open() error {
	var r io.Reader = d.raw
	for i := len(d.codings) - 1; i >= 0; i-- {
		next, c, err := decoders[d.codings[i]](r)
		if err == io.EOF {
			return io.EOF // an empty body: nothing was encoded
		}
		if err != nil {
			return fmt.Errorf("decode a %s answer: %w", d.codings[i], err)
		}
		if c != nil {
			d.closers = append(d.closers, c)
		}
		r = next
	}
	d.r = r
	return nil
}

func (d *decodedBody) Close() error {
	for _, c := range d.closers {
		_ = c.Close()
	}
	return d.raw.Close()
}
