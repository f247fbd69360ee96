package quality

import (
	"sync"
	"time"
)

// MaxRequestIDBytes is the longest request id remembered for feedback. The gateway's own ids are
// 24 bytes; a client's X-Request-Id is kept when it is no longer than this.
const MaxRequestIDBytes = 256

// join remembers which service and version served each request id, for a window and up to a
// number of ids. Ids are forgotten in the order they were remembered (first in, first out): the
// oldest when there are too many, and any whose window has passed.
type join struct {
	window time.Duration
	max    int

	mu   sync.Mutex
	byID map[string]servedBy // the latest exchange with each id
	// order is the remembered ids, oldest first, from head on. An id served twice is in it twice;
	// only the entry whose seq matches byID's is live, the other is skipped when it leaves.
	order []queued
	head  int
	seq   uint64
}

type servedBy struct {
	service, version string
	at               time.Time
	seq              uint64
}

type queued struct {
	id  string
	at  time.Time
	seq uint64
}

// compactAt is how many forgotten slots order may hold at its front before it is moved down;
// moving only when they are also half of it keeps the cost of a move amortised to O(1).
const compactAt = 1024

func newJoin(window time.Duration, max int) *join {
	return &join{window: window, max: max, byID: map[string]servedBy{}}
}

func (j *join) remember(id, service, version string, at, now time.Time) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.seq++
	j.byID[id] = servedBy{service: service, version: version, at: at, seq: j.seq}
	j.order = append(j.order, queued{id: id, at: at, seq: j.seq})
	j.forget(now)
}

// lookup returns who served id, if it is remembered and its window has not passed.
func (j *join) lookup(id string, now time.Time) (servedBy, bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.forget(now)
	s, ok := j.byID[id]
	if !ok || j.expired(s.at, now) {
		return servedBy{}, false
	}
	return s, true
}

func (j *join) expired(at, now time.Time) bool { return now.Sub(at) > j.window }

// forget drops the oldest entries while there are more than max or the oldest has expired. An
// entry served with an older At than the one before it stays until those before it go, but
// lookup never joins it once expired, and it still counts towards max.
func (j *join) forget(now time.Time) {
	for j.head < len(j.order) {
		e := j.order[j.head]
		if len(j.order)-j.head <= j.max && !j.expired(e.at, now) {
			break
		}
		if s, ok := j.byID[e.id]; ok && s.seq == e.seq {
			delete(j.byID, e.id)
		}
		j.order[j.head] = queued{} // let the id be collected
		j.head++
	}
	if j.head >= compactAt && j.head*2 >= len(j.order) {
		n := copy(j.order, j.order[j.head:])
		clear(j.order[n:])
		j.order, j.head = j.order[:n], 0
	}
}

// size is how many entries are held, live or not (for tests).
func (j *join) size() int {
	j.mu.Lock()
	defer j.mu.Unlock()
	return len(j.order) - j.head
}
