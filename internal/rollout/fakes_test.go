package rollout_test

import (
	"errors"
	"maps"
	"slices"
	"sync"
	"time"

	"aviary.dev/aviary/internal/config"
	"aviary.dev/aviary/internal/rollout"
)

// Small hand-written fakes of the controller's ports.

// memStore keeps states and events in memory; it can be told to fail.
type memStore struct {
	mu     sync.Mutex
	states map[string]rollout.State
	events []rollout.Event
	fail   error // Commit fails with it while set
}

func newMemStore() *memStore { return &memStore{states: map[string]rollout.State{}} }

func (s *memStore) Commit(service string, st rollout.State, events []rollout.Event) ([]rollout.Event, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return nil, s.fail
	}
	s.states[service] = st
	out := slices.Clone(events)
	for i := range out {
		out[i].Seq = uint64(len(s.events) + 1)
		s.events = append(s.events, out[i])
	}
	return out, nil
}

func (s *memStore) States() (map[string]rollout.State, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return nil, s.fail
	}
	return maps.Clone(s.states), nil
}

func (s *memStore) setFail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail = err
}

func (s *memStore) stored(service string) rollout.State {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.states[service]
}

// recordingRouter remembers what it was asked to serve.
type recordingRouter struct {
	mu      sync.Mutex
	applied [][]config.Service
}

func (r *recordingRouter) Apply(services []config.Service) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.applied = append(r.applied, slices.Clone(services))
}

func (r *recordingRouter) applies() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.applied)
}

// serving is the service as last applied.
func (r *recordingRouter) serving(name string) (config.Service, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.applied) == 0 {
		return config.Service{}, false
	}
	for _, s := range r.applied[len(r.applied)-1] {
		if s.Name == name {
			return s, true
		}
	}
	return config.Service{}, false
}

// healthBoard reports the health set on it; versions not set are unknown.
type healthBoard struct {
	mu sync.Mutex
	h  map[string]map[string]rollout.Health
}

func (b *healthBoard) Health(service string) map[string]rollout.Health {
	b.mu.Lock()
	defer b.mu.Unlock()
	return maps.Clone(b.h[service])
}

func (b *healthBoard) set(service, version string, h rollout.Health) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.h == nil {
		b.h = map[string]map[string]rollout.Health{}
	}
	if b.h[service] == nil {
		b.h[service] = map[string]rollout.Health{}
	}
	b.h[service][version] = h
}

// scriptedJudge answers the verdicts it is given (Running otherwise) and remembers what it was
// asked and told to forget.
type scriptedJudge struct {
	mu        sync.Mutex
	verdicts  map[string]rollout.Verdict
	asked     map[string]rollout.Run
	forgotten []string
}

func newScriptedJudge() *scriptedJudge {
	return &scriptedJudge{verdicts: map[string]rollout.Verdict{}, asked: map[string]rollout.Run{}}
}

func (j *scriptedJudge) Verdict(r rollout.Run) rollout.Verdict {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.asked[r.ID] = r
	if v, ok := j.verdicts[r.ID]; ok {
		return v
	}
	return rollout.Verdict{Phase: rollout.Running}
}

func (j *scriptedJudge) Forget(id string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.forgotten = append(j.forgotten, id)
}

func (j *scriptedJudge) say(id string, p rollout.VerdictPhase) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.verdicts[id] = rollout.Verdict{Phase: p, Message: "scripted " + string(p)}
}

func (j *scriptedJudge) wasAsked(id string) (rollout.Run, bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	r, ok := j.asked[id]
	return r, ok
}

func (j *scriptedJudge) forgot(id string) bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	return slices.Contains(j.forgotten, id)
}

// manualClock is a clock only the test moves.
type manualClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *manualClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *manualClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

var errDiskFull = errors.New("disk full")
