// Package redact makes URLs and the errors that carry them fit for logs, events, metrics and
// messages: without the user info, query or fragment, where tokens are usually kept, and for a
// webhook, without the path that is its secret.
//
// What it must never do: return a string that holds more of a secret than what it was given with
// the secret taken out. A URL it cannot read is replaced whole.
package redact

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/url"
	"regexp"
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

// Hook returns a webhook's URL fit to show: scheme and host, and in place of the path (which many
// services, Slack's and Discord's among them, make the hook's secret) a short fingerprint of the
// whole URL, so that two hooks on one host stay apart: https://hooks.slack.com/<redacted:3f2a9c1b>.
func Hook(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(invalid URL)"
	}
	shown := &url.URL{Scheme: u.Scheme, Host: u.Host}
	if u.Path == "" || u.Path == "/" {
		return shown.String() + u.Path
	}
	sum := sha256.Sum256([]byte(raw))
	return shown.String() + "/<redacted:" + hex.EncodeToString(sum[:4]) + ">"
}

// userinfo is the user:password@ part of a URL in free text.
var userinfo = regexp.MustCompile(`([A-Za-z][A-Za-z0-9+.-]*://)[^/?#\s"'@]+@`)

// Text returns s with the user info of every URL in it replaced: for messages that quote URLs
// they did not build, such as a config's validation errors.
func Text(s string) string {
	return userinfo.ReplaceAllString(s, "${1}REDACTED@")
}

// Err strips the *url.Error wrapper that http.Client puts around every error: it repeats the
// full URL, query and all, which the caller shows redacted.
func Err(err error) error {
	if ue, ok := errors.AsType[*url.Error](err); ok {
		return ue.Err
	}
	return err
}
