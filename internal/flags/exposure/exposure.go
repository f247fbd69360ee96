// Package exposure records who was given which variant of a flag: the first time each targeting key
// got each variant, from OFREP evaluations and from the gateway's per-request flags alike. The
// records are what an experiment counts units in arms by.
//
// Evaluations are many and exposures few: a bounded in-memory set drops repeats at the cost of a map
// lookup (no allocation), a bounded queue takes the new ones off the request path (a full queue
// drops and counts, never blocks), and one goroutine writes them to the store in batches, where the
// first record of a key and variant wins.
package exposure

import (
	"hash/maphash"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"aviary.dev/aviary/internal/store"
)

const (
	shards        = 16
	shardCapacity = 1 << 16 // keys remembered per shard; a full shard is forgotten (the store dedupes)
	queueSize     = 4096
	batchEvery    = 250 * time.Millisecond
)

// Sink is where exposures are kept: the store.
type Sink interface {
	AddExposures([]store.Exposure) (added, dropped int, err error)
}

// Options configure a Recorder.
type Options struct {
	Sink Sink
	// Track says whether the key is on its service's stable or canary for the flag ("" unknown);
	// called off the request path.
	Track    func(flag, key string) string
	Now      func() time.Time
	Logger   *slog.Logger
	Registry prometheus.Registerer
}

type seenKey struct{ flag, key, variant string }

type shard struct {
	mu   sync.Mutex
	seen map[seenKey]struct{}
}

// Recorder takes exposures and stores the new ones. Close it to flush.
type Recorder struct {
	o      Options
	seed   maphash.Seed
	shards [shards]shard
	queue  chan store.Exposure
	done   chan struct{}
	closed sync.RWMutex // held for writing by Close: no send after the queue is closed
	isDone bool

	stored, dropped prometheus.Counter
}

// New starts a recorder.
func New(o Options) *Recorder {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	r := &Recorder{o: o, seed: maphash.MakeSeed(), queue: make(chan store.Exposure, queueSize), done: make(chan struct{}),
		stored: prometheus.NewCounter(prometheus.CounterOpts{Name: "aviary_flag_exposures_stored_total",
			Help: "First exposures of a targeting key to a flag variant, stored for experiments."}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{Name: "aviary_flag_exposures_dropped_total",
			Help: "Exposures not stored: the queue was full, or the flag reached its limit of stored exposures."}),
	}
	for i := range r.shards {
		r.shards[i].seen = map[seenKey]struct{}{}
	}
	if o.Registry != nil {
		o.Registry.MustRegister(r.stored, r.dropped)
	}
	go r.write()
	return r
}

// Exposed records that key was given variant of flag. It never blocks.
func (r *Recorder) Exposed(flag, key, variant string) {
	k := seenKey{flag, key, variant}
	sh := &r.shards[maphash.String(r.seed, key)%shards]
	sh.mu.Lock()
	if _, ok := sh.seen[k]; ok {
		sh.mu.Unlock()
		return
	}
	if len(sh.seen) >= shardCapacity {
		clear(sh.seen)
	}
	sh.seen[k] = struct{}{}
	sh.mu.Unlock()
	r.closed.RLock()
	defer r.closed.RUnlock()
	if r.isDone {
		return
	}
	select {
	case r.queue <- store.Exposure{Flag: flag, Key: key, Variant: variant, Time: r.o.Now().UTC()}:
	default:
		r.dropped.Inc()
		sh.mu.Lock()
		delete(sh.seen, k) // not stored: the next evaluation tries again
		sh.mu.Unlock()
	}
}

// Close stores what is queued and stops.
func (r *Recorder) Close() {
	r.closed.Lock()
	if !r.isDone {
		r.isDone = true
		close(r.queue)
	}
	r.closed.Unlock()
	<-r.done
}

func (r *Recorder) write() {
	defer close(r.done)
	tick := time.NewTicker(batchEvery)
	defer tick.Stop()
	var batch []store.Exposure
	flush := func() {
		if len(batch) == 0 {
			return
		}
		for i := range batch {
			if r.o.Track != nil {
				batch[i].Track = r.o.Track(batch[i].Flag, batch[i].Key)
			}
		}
		added, dropped, err := r.o.Sink.AddExposures(batch)
		if err != nil {
			r.o.Logger.Error("store flag exposures; they are lost, evaluations go on", "exposures", len(batch), "err", err)
			r.dropped.Add(float64(len(batch)))
		}
		r.stored.Add(float64(added))
		r.dropped.Add(float64(dropped))
		batch = batch[:0]
	}
	for {
		select {
		case e, ok := <-r.queue:
			if !ok {
				flush()
				return
			}
			batch = append(batch, e)
			if len(batch) >= queueSize {
				flush()
			}
		case <-tick.C:
			flush()
		}
	}
}
