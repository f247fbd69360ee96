package redact

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"
)

func TestURLDropsWhatMayCarryASecret(t *testing.T) {
	for raw, want := range map[string]string{
		"https://user:pw@hooks.example/x?token=s3cret#frag": "https://hooks.example/x",
		"http://127.0.0.1:9/evaluate?":                      "http://127.0.0.1:9/evaluate",
		"http://[::1":                                       "(invalid URL)",
	} {
		if got := URL(raw); got != want {
			t.Errorf("URL(%q) = %q, want %q", raw, got, want)
		}
	}
}

func TestErrDropsTheURLWrapper(t *testing.T) {
	inner := errors.New("connection refused")
	wrapped := fmt.Errorf("post: %w", &url.Error{Op: "Post", URL: "http://h/?token=s3cret", Err: inner})
	if got := Err(wrapped); got != inner {
		t.Errorf("Err = %v, want the error inside the *url.Error", got)
	}
	if got := Err(inner); got != inner {
		t.Errorf("Err of a plain error = %v, want it unchanged", got)
	}
}

func TestHookHidesThePath(t *testing.T) {
	const slack = "https://hooks.slack.com/services/T000/B000/XXXXsecret?x=1"
	got := Hook(slack)
	if strings.Contains(got, "XXXXsecret") || strings.Contains(got, "T000") || !strings.HasPrefix(got, "https://hooks.slack.com/<redacted:") {
		t.Errorf("Hook(%q) = %q, want the host and a fingerprint only", slack, got)
	}
	if other := Hook("https://hooks.slack.com/services/T000/B000/other"); other == got {
		t.Errorf("two hooks on one host are both shown as %q", got)
	}
	for raw, want := range map[string]string{
		"https://u:pw@hooks.example/":    "https://hooks.example/",
		"http://127.0.0.1:9":             "http://127.0.0.1:9",
		"http://[::1":                    "(invalid URL)",
		"https://hooks.example?token=s3": "https://hooks.example",
	} {
		if got := Hook(raw); got != want {
			t.Errorf("Hook(%q) = %q, want %q", raw, got, want)
		}
	}
}

func TestTextHidesUserInfo(t *testing.T) {
	for in, want := range map[string]string{
		`services[0].versions[0].endpoints[0]: "http://admin:s3cret@10.0.0.1:8080/x" must not have a query`: `services[0].versions[0].endpoints[0]: "http://REDACTED@10.0.0.1:8080/x" must not have a query`,
		`parse "https://tok@h:99999": invalid port`:                                                         `parse "https://REDACTED@h:99999": invalid port`,
		`no secret in http://h/a@b or mail@example.com`:                                                     `no secret in http://h/a@b or mail@example.com`,
	} {
		if got := Text(in); got != want {
			t.Errorf("Text(%q) = %q, want %q", in, got, want)
		}
	}
}
