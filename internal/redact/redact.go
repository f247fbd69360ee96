// Package redact makes URLs and the errors that carry them fit for logs, events, metrics and
// messages: without the user info, query or fragment, where tokens are usually kept.
package redact

import (
	"errors"
	"net/url"
)

// URL returns raw without user info, query or fragment. A URL that does not parse is shown as a
// placeholder.
func URL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(invalid URL)"
	}
	u.User, u.RawQuery, u.ForceQuery, u.Fragment = nil, "", false, ""
	return u.String()
}

// Err strips the *url.Error wrapper that http.Client puts around every error: it repeats the
// full URL, query and all, which the caller shows redacted.
func Err(err error) error {
	if ue, ok := errors.AsType[*url.Error](err); ok {
		return ue.Err
	}
	return err
}
