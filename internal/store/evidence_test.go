package store

import (
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"aviary.dev/aviary/internal/config"
)

// The evidence of a rollout in flight survives a close and an open of the file, is replaced whole
// by the next put, and is gone once deleted.
func TestEvidenceIsKeptAcrossReopenUntilDeleted(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "aviary.db")
	o := Options{MaxEvents: config.DefaultMaxEvents}
	s, err := Open(path, o)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.PutEvidence("web", []byte(`{"rollout":"web/1"}`)); err != nil {
		t.Fatal(err)
	}
	if err := s.PutEvidence("web", []byte(`{"rollout":"web/2"}`)); err != nil {
		t.Fatal(err)
	}
	if err := s.PutEvidence("api", []byte(`{"rollout":"api/1"}`)); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, path, o)
	got, err := s.Evidence()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]byte{"web": []byte(`{"rollout":"web/2"}`), "api": []byte(`{"rollout":"api/1"}`)}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Evidence() = %q, want %q", got, want)
	}
	if err := s.DeleteEvidence("web"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteEvidence("nobody"); err != nil {
		t.Fatalf("deleting what is not there: %v", err)
	}
	if got, _ := s.Evidence(); len(got) != 1 || got["api"] == nil {
		t.Fatalf("after delete: %q, want only api's", got)
	}
}

// Evidence that is not JSON, or has no service, is refused with what to do.
func TestEvidenceThatCannotBeReadBackIsRefused(t *testing.T) {
	t.Parallel()
	s := open(t, "", Options{MaxEvents: config.DefaultMaxEvents})
	if err := s.PutEvidence("web", []byte("{cut")); err == nil || !strings.Contains(err.Error(), "not JSON") {
		t.Fatalf("PutEvidence(not JSON) = %v", err)
	}
	if err := s.PutEvidence("", []byte("{}")); err == nil || !strings.Contains(err.Error(), "service name is empty") {
		t.Fatalf("PutEvidence(no service) = %v", err)
	}
}
