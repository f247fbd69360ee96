package notify

import (
	"errors"
	"net/http"
	"net/url"
)

// defaultClient is the client used when none is given. It ignores HTTP_PROXY and friends: the
// controller's traffic to hooks and gates should go where the config says, not through whatever
// proxy the process environment happens to name.
func defaultClient() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Proxy = nil
	return &http.Client{Transport: t}
}

// redact returns a URL fit for logs, metrics and messages: without user info or query, where
// tokens are usually kept. A URL that does not parse is shown as a placeholder.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(invalid URL)"
	}
	u.User, u.RawQuery, u.ForceQuery, u.Fragment = nil, "", false, ""
	return u.String()
}

// bareError strips the *url.Error wrapper that http.Client puts around every error: it repeats
// the full URL, query and all, which the caller already shows redacted.
func bareError(err error) error {
	if ue, ok := errors.AsType[*url.Error](err); ok {
		return ue.Err
	}
	return err
}
