package experiment

import (
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"aviary.dev/aviary/internal/config"
	"aviary.dev/aviary/internal/store"
)

// The builtin metrics come from the gateway's own records of each unit's requests: the recorder
// sums each unit's requests, errors and slow requests per service, and every flush turns the sums
// into tracked events of reserved names (BuiltinEvent), stored like the apps' events. So they
// survive a restart, are attributed per unit from its exposure on like any other event, and are
// exported in the units CSV. Per unit:
//
//   - errorRate: its failed requests over its requests (5xx, or a fault, as the judge counts);
//   - latency with quantile q: the share of its requests slower than control's q-quantile at the
//     time (the boundary is read from the gateway's measurements of control before each flush, so
//     every arm is held to the same boundary at any moment; control's mean is about 1-q).
//
//   - ttft (LLM services): the mean time to the first token of its answers that had one, in
//     seconds, from the gateway's LLM records of its requests;
//   - costPerRequest (LLM services): the mean cost of its priced answers (llm.prices).
//
// A unit's value is a ratio of its own requests, so a unit with many requests weighs what one
// unit weighs, as for events. Feedback per unit is not computed: feedback names a request, not a
// unit, and the join from one to the other is not kept.

// reservedPrefix begins the names of the events the gateway's records become; apps may not send
// events of such names.
const reservedPrefix = "aviary:"

// BuiltinEvent is the name of the events that hold a service's per-unit sums of one kind:
// requests, errors, or slow@Q (requests slower than control's quantile Q).
func BuiltinEvent(service, kind string) string { return reservedPrefix + kind + ":" + service }

func slowKind(q float64) string { return "slow@" + strconv.FormatFloat(q, 'g', -1, 64) }

// MaxRecordedUnits bounds the units a recorder sums between two flushes; the requests of more
// are dropped (and counted), so a flood of new keys cannot fill the memory.
const MaxRecordedUnits = 200_000

// RequestRecorder sums the gateway's per-unit requests between flushes. Record is safe for
// concurrent use and cheap: one atomic load for a service no experiment measures.
type RequestRecorder struct {
	// watched is, per service, what its requests are recorded under: the service itself for an
	// experiment over its versions, flag:KEY for one over the variants of a flag bound to it.
	watched atomic.Pointer[map[string][]target]
	mu      sync.Mutex
	sums    map[unitKey]*unitSums
	dropped atomic.Int64
	flushes int64
	epoch   string // tells this process's event IDs from another's
}

// target is a name requests are recorded under, with the latency boundaries its experiments'
// metrics need.
type target struct {
	name   string
	bounds []boundary
	llm    bool // an experiment measures ttft or costPerRequest: RecordLLM records it
}

type boundary struct {
	q     float64
	limit time.Duration // 0: not known yet (control has too few requests)
}

type unitKey struct{ target, key string }

type unitSums struct {
	first            time.Time // when its first request since the last flush ended
	requests, errors float64
	slow             []float64 // per boundary of the target
	// From the LLM records: the sum of the times to first token (seconds) over the answers that
	// had one, and the sum of the costs over the priced answers.
	ttft, firstTokens, cost, priced float64
}

// NewRequestRecorder returns a recorder that records nothing until Watch names services.
func NewRequestRecorder(now time.Time) *RequestRecorder {
	return &RequestRecorder{sums: map[unitKey]*unitSums{}, epoch: strconv.FormatInt(now.UnixNano(), 36)}
}

// Record adds one finished request of a unit of a service, which ended at end.
func (r *RequestRecorder) Record(service, key string, failed bool, latency time.Duration, end time.Time) {
	w := r.watched.Load()
	if w == nil {
		return
	}
	targets, ok := (*w)[service]
	if !ok {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, t := range targets {
		s := r.sumsOf(t, key, end)
		if s == nil {
			continue
		}
		s.requests++
		if failed {
			s.errors++
		}
		for i, b := range t.bounds {
			if b.limit > 0 && latency > b.limit && i < len(s.slow) {
				s.slow[i]++
			}
		}
	}
}

// sumsOf is the unit's sums under target t, made at end if new; nil (and the request counted as
// dropped) when MaxRecordedUnits are summed already. The caller holds r.mu.
func (r *RequestRecorder) sumsOf(t target, key string, end time.Time) *unitSums {
	k := unitKey{t.name, key}
	s := r.sums[k]
	if s == nil {
		if len(r.sums) >= MaxRecordedUnits {
			r.dropped.Add(1)
			return nil
		}
		s = &unitSums{first: end, slow: make([]float64, len(t.bounds))}
		r.sums[k] = s
	}
	return s
}

// RecordLLM adds what the gateway's LLM record of one request of a unit of a service says: its
// time to first token (0: none, a failed or empty answer) and its cost (priced false: the model
// has no price). It ended at end. Only targets with an LLM metric record it.
func (r *RequestRecorder) RecordLLM(service, key string, firstToken time.Duration, cost float64, priced bool, end time.Time) {
	w := r.watched.Load()
	if w == nil || key == "" || (firstToken <= 0 && !priced) {
		return
	}
	targets, ok := (*w)[service]
	if !ok {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, t := range targets {
		if !t.llm {
			continue
		}
		s := r.sumsOf(t, key, end)
		if s == nil {
			continue
		}
		if firstToken > 0 {
			s.ttft += firstToken.Seconds()
			s.firstTokens++
		}
		if priced {
			s.cost += cost
			s.priced++
		}
	}
}

// Watch sets what to record: the running experiments with builtin metrics, and for each latency
// quantile the boundary that control's measurements give now (limit returns 0 when it knows none
// yet; it is asked with the service, or flag:KEY for a flag's variants, and control's version or
// variant). flagService is the service a flag is bound to ("" none). The caller flushes first.
func (r *RequestRecorder) Watch(running []Running, flagService func(flag string) string, limit func(target, control string, q float64) time.Duration) {
	w := map[string][]target{}
	for _, x := range running {
		service, name, control := x.Spec.Service, x.Spec.Service, x.Spec.Arms[0].Version
		if service == "" {
			service, name, control = flagService(x.Spec.Flag), flagMeasures(x.Spec.Flag), x.Spec.Arms[0].Variant
		}
		if service == "" {
			continue
		}
		t := target{name: name}
		measured := false
		for _, m := range x.Spec.Metrics {
			switch m.Builtin {
			case config.BuiltinErrorRate:
				measured = true
			case config.BuiltinLatency:
				measured = true
				t.bounds = append(t.bounds, boundary{q: m.Quantile, limit: limit(name, control, m.Quantile)})
			case config.BuiltinTTFT, config.BuiltinCostPerRequest:
				measured, t.llm = true, true
			}
		}
		if !measured {
			continue
		}
		// Two experiments on one target (one on ttft, one on latency) share its sums.
		if i := slices.IndexFunc(w[service], func(o target) bool { return o.name == name }); i >= 0 {
			w[service][i].llm = w[service][i].llm || t.llm
			if len(w[service][i].bounds) == 0 {
				w[service][i].bounds = t.bounds
			}
			continue
		}
		w[service] = append(w[service], t)
	}
	r.watched.Store(&w)
}

// Flush returns the sums since the last flush as tracked events, and starts afresh. Each unit's
// events are at the end of its first request since the last flush (not at the flush): its
// requests count from its exposure on, and those of an arm stopped in between count up to the
// stop.
func (r *RequestRecorder) Flush() []store.TrackedEvent {
	w := r.watched.Load()
	bounds := map[string][]boundary{}
	if w != nil {
		for _, ts := range *w {
			for _, t := range ts {
				bounds[t.name] = t.bounds
			}
		}
	}
	r.mu.Lock()
	sums := r.sums
	r.sums = map[unitKey]*unitSums{}
	r.flushes++
	batch := r.epoch + "." + strconv.FormatInt(r.flushes, 36)
	r.mu.Unlock()
	var out []store.TrackedEvent
	for k, s := range sums {
		add := func(k unitKey, kind string, v float64) {
			name := BuiltinEvent(k.target, kind)
			out = append(out, store.TrackedEvent{ID: name + "/" + batch + "/" + k.key, Unit: k.key, Event: name, Value: v, Time: s.first.UTC()})
		}
		add(k, "requests", s.requests)
		add(k, "errors", s.errors)
		if s.firstTokens > 0 {
			add(k, "ttft", s.ttft)
			add(k, "first-tokens", s.firstTokens)
		}
		if s.priced > 0 {
			add(k, "cost", s.cost)
			add(k, "priced", s.priced)
		}
		for i, b := range bounds[k.target] {
			if b.limit > 0 && i < len(s.slow) {
				add(k, slowKind(b.q), s.slow[i])
			}
		}
	}
	return out
}

// Dropped is how many requests were not recorded because too many units came between flushes.
func (r *RequestRecorder) Dropped() int64 { return r.dropped.Load() }

// builtinEvents are the events a builtin metric's per-unit value is read from: its numerator and
// its denominator (the unit's requests). ok is false for a builtin not computed here.
func builtinEvents(e config.Experiment, m config.ExperimentMetric) (num, den string, ok bool) {
	service := e.Service
	if service == "" {
		service = flagMeasures(e.Flag)
	}
	den = BuiltinEvent(service, "requests")
	switch m.Builtin {
	case config.BuiltinErrorRate:
		return BuiltinEvent(service, "errors"), den, true
	case config.BuiltinLatency:
		return BuiltinEvent(service, slowKind(m.Quantile)), den, true
	case config.BuiltinTTFT:
		return BuiltinEvent(service, "ttft"), BuiltinEvent(service, "first-tokens"), true
	case config.BuiltinCostPerRequest:
		return BuiltinEvent(service, "cost"), BuiltinEvent(service, "priced"), true
	}
	return "", "", false
}

func checkEventName(i int, name string) error {
	if len(name) >= len(reservedPrefix) && name[:len(reservedPrefix)] == reservedPrefix {
		return fmt.Errorf("events[%d].event: %q begins with %q, which names the gateway's own records; choose another name", i, name, reservedPrefix)
	}
	return nil
}

// AddRecords stores the events a RequestRecorder flushed (reserved names, which Track refuses
// from apps), in batches.
func (m *Manager) AddRecords(evs []store.TrackedEvent) error {
	for len(evs) > 0 {
		n := min(len(evs), MaxTrackBatch)
		if _, _, err := m.o.Store.AddTracked(evs[:n]); err != nil {
			return fmt.Errorf("store the gateway's records of the experiments' units: %w", err)
		}
		evs = evs[n:]
	}
	return nil
}
