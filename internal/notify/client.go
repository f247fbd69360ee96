package notify

import (
	"net/http"
)

// defaultClient is the client used when none is given. It ignores HTTP_PROXY and friends: the
// controller's traffic to hooks and gates should go where the config says, not through whatever
// proxy the process environment happens to name.
func defaultClient() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Proxy = nil
	return &http.Client{Transport: t}
}
