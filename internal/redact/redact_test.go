package redact

import (
	"errors"
	"fmt"
	"net/url"
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
