package notify

import (
	"net/http"

	"aviary.dev/aviary/internal/redact"
)

// defaultClient is the client used when none is given. It ignores HTTP_PROXY and friends: the
// controller's traffic to hooks and gates should go where the config says, not through whatever
// proxy the process environment happens to name. It follows no redirect: a hook or gate that
// answers 3xx could send Aviary's requests (and a hook's signed events) to an address the config
// never named, such as a link-local metadata service; the answer is the redirect, reported as a
// failure.
func defaultClient() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Proxy = nil
	return &http.Client{Transport: t, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}
}

// redirected says where a redirect answer pointed, for the failure it is reported as; "" for
// any other answer.
func redirected(resp *http.Response) string {
	if resp.StatusCode/100 != 3 {
		return ""
	}
	to := "(no Location)"
	if loc := resp.Header.Get("Location"); loc != "" {
		to = redact.URL(loc)
	}
	return " redirecting to " + to + "; redirects are not followed: configure the final URL"
}
