package config

import (
	"os"
	"testing"
)

// FuzzParse: any input yields a config or errors, never a panic; an accepted config validates again
// cleanly and every error names where it is.
func FuzzParse(f *testing.F) {
	full, _ := os.ReadFile("testdata/full.yaml")
	f.Add(full)
	f.Add([]byte(`services: [{name: a, versions: [{name: v1, endpoints: ["http://h:1"]}]}]`))
	f.Add([]byte(`gateway: {listen: ":0", timeouts: {connect: 1s}}`))
	f.Add([]byte(`services: [{name: a, routes: [{match: {path: {regex: "a+"}}, version: v1}]}]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data)
		if err != nil {
			errs, ok := err.(Errors)
			if !ok || len(errs) == 0 {
				t.Fatalf("error is not a non-empty Errors: %T %v", err, err)
			}
			return
		}
		if errs := c.Validate(); len(errs) > 0 {
			t.Fatalf("accepted config fails validation: %v", errs)
		}
	})
}
