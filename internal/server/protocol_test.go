package server_test

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// With gateway.tls the gateway speaks HTTPS, HTTP/2 to clients that offer it and HTTP/1.1 to those
// that do not, and proxies both to a plain-HTTP upstream.
func TestTLSGatewayServesHTTP2AndHTTP1(t *testing.T) {
	certFile, keyFile, roots := selfSignedCert(t, "127.0.0.1")
	v1 := upstream(t, "v1")
	a := start(t, shop{v1: []string{v1},
		gateway: `tls: {certFile: "` + certFile + `", keyFile: "` + keyFile + `"}`}.YAML(), false)

	http1 := new(http.Protocols)
	http1.SetHTTP1(true)
	clients := []struct {
		name      string
		transport *http.Transport
		wantMajor int
	}{
		{"HTTP/2", &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}, ForceAttemptHTTP2: true}, 2},
		{"HTTP/1.1 only", &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}, Protocols: http1}, 1},
	}
	for _, c := range clients {
		t.Run(c.name, func(t *testing.T) {
			defer c.transport.CloseIdleConnections()
			client := &http.Client{Transport: c.transport, Timeout: 10 * time.Second}
			resp, err := client.Get("https://" + a.gateway + "/")
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if err != nil || resp.StatusCode != http.StatusOK || string(body) != "v1" {
				t.Fatalf("got %d %q (read error %v), want 200 from v1", resp.StatusCode, body, err)
			}
			if resp.ProtoMajor != c.wantMajor {
				t.Errorf("spoke %s, want HTTP/%d", resp.Proto, c.wantMajor)
			}
		})
	}
}

// A request that is not HTTP gets 400 Bad Request, and the gateway goes on serving.
func TestMalformedRequestGets400(t *testing.T) {
	a := start(t, shop{v1: []string{upstream(t, "v1")}}.YAML(), false)
	requests := []struct{ name, raw string }{
		{"garbage request line", "GARBAGE\r\n\r\n"},
		{"header line without a colon", "GET / HTTP/1.1\r\nHost: shop\r\nNo colon here\r\n\r\n"},
	}
	for _, r := range requests {
		t.Run(r.name, func(t *testing.T) {
			conn, err := net.DialTimeout("tcp", a.gateway, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
			if _, err := io.WriteString(conn, r.raw); err != nil {
				t.Fatal(err)
			}
			status, err := bufio.NewReader(conn).ReadString('\n')
			if err != nil || !strings.HasPrefix(status, "HTTP/1.1 400 ") {
				t.Fatalf("got status line %q (error %v), want HTTP/1.1 400", status, err)
			}
		})
	}
	a.expectServedBy("v1", 1)
}

// selfSignedCert writes a certificate for host (an IP address) and its key to files, and returns them
// with a pool that trusts the certificate.
func selfSignedCert(t *testing.T, host string) (certFile, keyFile string, roots *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "aviary test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.ParseIP(host)},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writePEM(t, certFile, "CERTIFICATE", der)
	writePEM(t, keyFile, "PRIVATE KEY", pkcs8)
	roots = x509.NewCertPool()
	roots.AddCert(cert)
	return certFile, keyFile, roots
}

func writePEM(t *testing.T, path, kind string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}
