package store

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"aviary.dev/aviary/internal/config"
	"aviary.dev/aviary/internal/rollout"
)

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// open opens a store in a fresh directory (or at path, when given) and closes it when the test ends.
func open(t *testing.T, path string, o Options) *Store {
	t.Helper()
	if path == "" {
		path = filepath.Join(t.TempDir(), "aviary.db")
	}
	s, err := Open(path, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func event(service string, kind config.EventKind, i int) rollout.Event {
	return rollout.Event{Time: t0.Add(time.Duration(i) * time.Second), Service: service, Kind: kind,
		Reason: string(kind) + " reason", By: "controller", Phase: rollout.Progressing, Stable: "v1", Canary: "v2", Weight: i}
}

func commit(t *testing.T, s *Store, service string, gen int64, events ...rollout.Event) []rollout.Event {
	t.Helper()
	got, err := s.Commit(service, rollout.State{Service: service, Phase: rollout.Progressing, Generation: gen}, events)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func seqs(events []rollout.Event) []uint64 {
	out := []uint64{}
	for _, ev := range events {
		out = append(out, ev.Seq)
	}
	return out
}

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	s := open(t, "", Options{MaxEvents: config.DefaultMaxEvents})
	st := rollout.State{
		Service: "web", Phase: rollout.Paused, Stable: "v1", Canary: "v2", SpecRelease: "v2", Weight: 20,
		Route:    &config.Match{Header: &config.KeyMatch{Name: "X-Canary", StringMatch: config.StringMatch{Value: "1"}}},
		Strategy: "canary", StepIndex: 1, StepStartedAt: t0, Attempt: 1,
		Steps:        []rollout.Step{{Kind: rollout.SetWeight, Text: "set weight 20", Weight: 20}},
		PauseReasons: []rollout.PauseReason{{Kind: rollout.UserPauseReason, Since: t0}},
		Checks:       []rollout.Check{{ID: "web-1-a", Kind: rollout.StepAnalysis, Templates: []string{"errors"}, StartedAt: t0}},
		Message:      "paused by alice", StartedAt: t0, UpdatedAt: t0, Generation: 7,
	}
	in := []rollout.Event{event("web", "RolloutStarted", 1), event("", "StepStarted", 2), event("web", "Paused", 3)}
	got, err := s.Commit("web", st, in)
	if err != nil {
		t.Fatal(err)
	}
	if want := []uint64{1, 2, 3}; !reflect.DeepEqual(seqs(got), want) {
		t.Errorf("Commit returned seqs %v, want %v", seqs(got), want)
	}
	if in[0].Seq != 0 || in[1].Service != "" {
		t.Errorf("Commit changed the caller's events: %+v", in)
	}
	if got[1].Service != "web" {
		t.Errorf("event without a service stored with %q, want web", got[1].Service)
	}

	states, err := s.States()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(states, map[string]rollout.State{"web": st}) {
		t.Errorf("States() = %+v\nwant %+v", states, st)
	}
	events, err := s.Events(EventQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(events, got) {
		t.Errorf("Events() = %+v\nwant %+v", events, got)
	}
	history, err := s.History("web")
	if err != nil {
		t.Fatal(err)
	}
	want := []HistoryEntry{{Revision: 1, Time: in[0].Time, Kind: "RolloutStarted", Stable: "v1", Canary: "v2",
		Reason: "RolloutStarted reason", By: "controller"}}
	if !reflect.DeepEqual(history, want) {
		t.Errorf("History(web) = %+v\nwant %+v", history, want)
	}
	if h, err := s.History("api"); err != nil || len(h) != 0 {
		t.Errorf("History(api) = %v, %v; want none", h, err)
	}
}

func TestSpecs(t *testing.T) {
	t.Parallel()
	s := open(t, "", Options{MaxEvents: config.DefaultMaxEvents})
	w := 0
	sp := StoredSpec{
		Service: config.Service{
			Name:        "web",
			Match:       config.ServiceMatch{PathPrefix: "/"},
			Versions:    []config.Version{{Name: "v1", Endpoints: []string{"http://127.0.0.1:9001"}}},
			HealthCheck: &config.HealthCheck{Path: "/healthz", Interval: config.D(2 * time.Second)},
			Release:     "v1",
			Strategy: &config.Strategy{ScaleDownDelay: config.D(time.Minute), Canary: &config.CanaryStrategy{
				Steps: []config.Step{{SetWeight: &w}, {Pause: &config.PauseStep{Duration: config.D(30 * time.Second)}}},
			}},
		},
		Basis: "sha256:abc", AppliedAt: t0, By: "alice",
	}
	if err := s.PutSpec(sp); err != nil {
		t.Fatal(err)
	}
	if err := s.PutSpec(StoredSpec{Service: config.Service{Name: "api"}, AppliedAt: t0}); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteSpec("api"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteSpec("never-there"); err != nil {
		t.Errorf("DeleteSpec of a missing spec: %v", err)
	}
	got, err := s.Specs()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, map[string]StoredSpec{"web": sp}) {
		t.Errorf("Specs() = %+v\nwant %+v", got, sp)
	}
	if err := s.PutSpec(StoredSpec{}); err == nil {
		t.Error("PutSpec of a nameless service succeeded")
	}
}

func TestSeqSurvivesReopen(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "nested", "dir", "aviary.db")
	s, err := Open(path, Options{MaxEvents: config.DefaultMaxEvents})
	if err != nil {
		t.Fatal(err)
	}
	commit(t, s, "web", 1, event("web", "RolloutStarted", 1), event("web", "StepStarted", 2))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("store file: %v, %v; want mode 0600", fi.Mode(), err)
	}

	s = open(t, path, Options{MaxEvents: config.DefaultMaxEvents})
	got := commit(t, s, "web", 2, event("web", "Completed", 3))
	if got[0].Seq != 3 {
		t.Errorf("first seq after reopen = %d, want 3", got[0].Seq)
	}
	h, err := s.History("web")
	if err != nil {
		t.Fatal(err)
	}
	if len(h) != 2 || h[1].Revision != 2 || h[1].Kind != "Completed" {
		t.Errorf("History after reopen = %+v, want revisions 1 (RolloutStarted) and 2 (Completed)", h)
	}
}

func TestRetentionPrunesOldest(t *testing.T) {
	t.Parallel()
	s := open(t, "", Options{MaxEvents: 5})
	for i := 1; i <= 12; i++ {
		commit(t, s, "web", int64(i), event("web", "StepStarted", i))
	}
	events, err := s.Events(EventQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if want := []uint64{8, 9, 10, 11, 12}; !reflect.DeepEqual(seqs(events), want) {
		t.Errorf("kept seqs %v, want %v", seqs(events), want)
	}

	// A batch larger than MaxEvents keeps only its newest.
	batch := make([]rollout.Event, 7)
	for i := range batch {
		batch[i] = event("web", "Retried", 13+i)
	}
	commit(t, s, "web", 13, batch...)
	events, err = s.Events(EventQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if want := []uint64{15, 16, 17, 18, 19}; !reflect.DeepEqual(seqs(events), want) {
		t.Errorf("kept seqs %v, want %v", seqs(events), want)
	}
}

func TestHistoryKeepsLast100(t *testing.T) {
	t.Parallel()
	s := open(t, "", Options{MaxEvents: config.DefaultMaxEvents})
	for i := 1; i <= historyKept+5; i++ {
		commit(t, s, "web", int64(i), event("web", "RolloutStarted", i), event("web", "StepStarted", i))
	}
	commit(t, s, "api", 1, event("api", "Aborted", 1))
	h, err := s.History("web")
	if err != nil {
		t.Fatal(err)
	}
	if len(h) != historyKept || h[0].Revision != 6 || h[len(h)-1].Revision != historyKept+5 {
		t.Fatalf("History(web) has %d entries, revisions %d..%d; want %d, 6..%d",
			len(h), h[0].Revision, h[len(h)-1].Revision, historyKept, historyKept+5)
	}
	if a, err := s.History("api"); err != nil || len(a) != 1 || a[0].Revision != 1 {
		t.Errorf("History(api) = %+v, %v; want one entry, revision 1", a, err)
	}
}

func TestEventsQuery(t *testing.T) {
	t.Parallel()
	s := open(t, "", Options{MaxEvents: config.DefaultMaxEvents})
	for i := 1; i <= 10; i++ {
		svc := "web"
		if i%2 == 0 {
			svc = "api"
		}
		commit(t, s, svc, int64(i), event(svc, "StepStarted", i)) // web: odd seqs, api: even
	}
	for _, tc := range []struct {
		q    EventQuery
		want []uint64
	}{
		{EventQuery{}, []uint64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}},
		{EventQuery{Service: "web"}, []uint64{1, 3, 5, 7, 9}},
		{EventQuery{Service: "api", After: 4}, []uint64{6, 8, 10}},
		{EventQuery{After: 3, Limit: 4}, []uint64{4, 5, 6, 7}},
		{EventQuery{Service: "web", After: 2, Limit: 2}, []uint64{3, 5}},
		{EventQuery{After: 10}, []uint64{}},
		{EventQuery{Service: "nobody"}, []uint64{}},
	} {
		got, err := s.Events(tc.q)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(seqs(got), tc.want) {
			t.Errorf("Events(%+v) = %v, want %v", tc.q, seqs(got), tc.want)
		}
	}
}

func TestEventsDefaultLimit(t *testing.T) {
	t.Parallel()
	s := open(t, "", Options{MaxEvents: config.DefaultMaxEvents})
	batch := make([]rollout.Event, DefaultEventLimit+20)
	for i := range batch {
		batch[i] = event("web", "StepStarted", i)
	}
	commit(t, s, "web", 1, batch...)
	got, err := s.Events(EventQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != DefaultEventLimit || got[0].Seq != 1 {
		t.Errorf("Events() returned %d events from seq %d, want %d from 1", len(got), got[0].Seq, DefaultEventLimit)
	}
}

func TestLastEvents(t *testing.T) {
	t.Parallel()
	s := open(t, "", Options{MaxEvents: config.DefaultMaxEvents})
	for i := 1; i <= 10; i++ {
		svc := "web"
		if i%2 == 0 {
			svc = "api"
		}
		commit(t, s, svc, int64(i), event(svc, "StepStarted", i))
	}
	for _, tc := range []struct {
		service string
		n       int
		want    []uint64
	}{
		{"", 3, []uint64{8, 9, 10}},
		{"web", 2, []uint64{7, 9}},
		{"api", 50, []uint64{2, 4, 6, 8, 10}},
		{"web", 0, []uint64{}},
		{"nobody", 5, []uint64{}},
	} {
		got, err := s.LastEvents(tc.service, tc.n)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(seqs(got), tc.want) {
			t.Errorf("LastEvents(%q, %d) = %v, want %v", tc.service, tc.n, seqs(got), tc.want)
		}
	}
}

func TestCommitRefusesAnotherService(t *testing.T) {
	t.Parallel()
	s := open(t, "", Options{MaxEvents: config.DefaultMaxEvents})
	if _, err := s.Commit("web", rollout.State{Service: "api"}, nil); err == nil {
		t.Error("Commit of api's state as web succeeded")
	}
	if _, err := s.Commit("web", rollout.State{Service: "web"}, []rollout.Event{event("api", "Paused", 1)}); err == nil {
		t.Error("Commit of an api event as web succeeded")
	}
	if _, err := s.Commit("", rollout.State{}, nil); err == nil {
		t.Error("Commit with no service name succeeded")
	}
	if states, _ := s.States(); len(states) != 0 {
		t.Errorf("a refused commit wrote states: %+v", states)
	}
}

func TestSecondOpenIsInUse(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "aviary.db")
	open(t, path, Options{MaxEvents: config.DefaultMaxEvents})
	start := time.Now()
	s2, err := Open(path, Options{MaxEvents: config.DefaultMaxEvents, LockTimeout: 100 * time.Millisecond})
	if err == nil {
		s2.Close()
		t.Fatal("a second Open of an open store succeeded")
	}
	want := "store " + path + " is in use by another aviary process; stop it, or give this one its own storage.path"
	if err.Error() != want {
		t.Errorf("second Open: %v\nwant: %s", err, want)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("second Open took %v despite a 100ms lock timeout", d)
	}
}

func TestOpenErrorNamesFile(t *testing.T) {
	t.Parallel()
	blocker := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(blocker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(blocker, "aviary.db") // its parent is a file
	_, err := Open(path, Options{MaxEvents: config.DefaultMaxEvents})
	if err == nil || !strings.HasPrefix(err.Error(), "open store "+path+": ") {
		t.Errorf("Open under a file: %v; want an error starting with %q", err, "open store "+path)
	}
}

func TestSchemaMismatch(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "aviary.db")
	s, err := Open(path, Options{MaxEvents: config.DefaultMaxEvents})
	if err != nil {
		t.Fatal(err)
	}
	rawPut(t, s, metaBucket, nil, schemaKey, []byte("2"))
	s.Close()
	if _, err := Open(path, Options{MaxEvents: config.DefaultMaxEvents}); err == nil || !strings.Contains(err.Error(), `schema version "2"`) {
		t.Errorf("Open of a schema 2 file: %v; want a schema version error", err)
	}
}

// rawPut writes bytes past the store's encoding, into bucket (or its nested bucket sub).
func rawPut(t *testing.T, s *Store, bucket, sub, key, value []byte) {
	t.Helper()
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucket)
		if sub != nil {
			b = b.Bucket(sub)
		}
		return b.Put(key, value)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestCorruptValueIsAnError(t *testing.T) {
	t.Parallel()
	s := open(t, "", Options{MaxEvents: config.DefaultMaxEvents})
	commit(t, s, "web", 1, event("web", "RolloutStarted", 1))
	if err := s.PutSpec(StoredSpec{Service: config.Service{Name: "web"}}); err != nil {
		t.Fatal(err)
	}
	bad := []byte("{not json")
	rawPut(t, s, statesBucket, nil, []byte("web"), bad)
	rawPut(t, s, eventsBucket, nil, seqKey(1), bad)
	rawPut(t, s, specsBucket, nil, []byte("web"), bad)
	rawPut(t, s, historyBucket, []byte("web"), seqKey(1), bad)

	for _, tc := range []struct {
		name string
		call func() error
		want string
	}{
		{"States", func() error { _, err := s.States(); return err }, "decode states/web in store "},
		{"Events", func() error { _, err := s.Events(EventQuery{}); return err }, "decode events/1 in store "},
		{"LastEvents", func() error { _, err := s.LastEvents("", 1); return err }, "decode events/1 in store "},
		{"Specs", func() error { _, err := s.Specs(); return err }, "decode specs/web in store "},
		{"History", func() error { _, err := s.History("web"); return err }, "decode history/web/1 in store "},
	} {
		if err := tc.call(); err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("%s on a corrupt value: %v; want an error starting with %q", tc.name, err, tc.want)
		}
	}
}

// One service's last events are its own, whatever the other services are called (a name that
// another's starts with; a reason that quotes another's name).
func TestLastEventsOfOneServiceAmongSimilarNames(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "aviary.db"), Options{MaxEvents: 100})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i, name := range []string{"svc-1", "svc-10", "svc-1", "svc-10"} {
		ev := rollout.Event{Service: name, Kind: "StepStarted", Time: time.Now(), Reason: `like "svc-1"`}
		if _, err := s.Commit(name, rollout.State{Service: name, Generation: int64(i + 1)}, []rollout.Event{ev}); err != nil {
			t.Fatal(err)
		}
	}
	evs, err := s.LastEvents("svc-1", 10)
	if err != nil || len(evs) != 2 || evs[0].Service != "svc-1" || evs[1].Service != "svc-1" || evs[0].Seq >= evs[1].Seq {
		t.Fatalf("svc-1's last events: %+v, %v", evs, err)
	}
}
