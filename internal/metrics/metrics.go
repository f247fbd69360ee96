package metrics

import (
	"fmt"
	"strconv"
	"time"
)

// Role says why a request reached a version: as the one whose response the
// client gets, or as a mirrored copy whose response is discarded.
type Role uint8

const (
	Primary Role = iota // the client gets this version's response; placed by weight or sticky key
	Mirror              // a shadow copy; the response is discarded
	// Routed: the client gets this version's response, placed by a route rule (a segment), not
	// by weight. Kept apart because a segment is not a random sample of the traffic: the judge
	// compares only what was placed by weight (see internal/analysis/judge).
	Routed
)

func (r Role) String() string {
	switch r {
	case Primary:
		return "primary"
	case Mirror:
		return "mirror"
	case Routed:
		return "routed"
	}
	return "Role(" + strconv.Itoa(int(r)) + ")"
}

// Fault says why the gateway itself failed a request (zero: it did not).
type Fault uint8

const (
	NoFault      Fault = iota
	FaultConnect       // the upstream could not be reached
	FaultTimeout       // the upstream did not answer in time
	FaultGateway       // anything else the gateway failed at
)

// numKinds is the number of error kinds: index 0 is "5xx" (an upstream
// answered 5xx and the gateway did not fail), the others are indexed by Fault.
const numKinds = 4

var kindNames = [numKinds]string{"5xx", "connect", "timeout", "gateway"}

func (f Fault) String() string {
	switch f {
	case NoFault:
		return ""
	case FaultConnect, FaultTimeout, FaultGateway:
		return kindNames[f]
	}
	return "Fault(" + strconv.Itoa(int(f)) + ")"
}

// Observation is one finished request, as the gateway reports it to End.
//
// It is an error when Code >= 500 or Fault != NoFault. A 5xx without a fault
// counts as error kind "5xx"; a request with a fault counts as that fault's
// kind only, whatever its code. Code 0 without a fault (the client went away
// before a status was sent) is not an error.
type Observation struct {
	Code     int           // status sent to the client; 0 if none was sent
	Duration time.Duration // from request arrival to the end of the response body
	End      time.Time     // when the request finished: selects the window slot (zero: now)
	BytesIn  int64         // request body bytes read
	BytesOut int64         // response body bytes written
	Fault    Fault
	// Unit is the cluster of the request's sticky key, 1..NumUnits (0: no sticky key): users of
	// one cluster stay in it, so the judge can see how much more than chance the stable's clusters
	// differ (see Series.Units).
	Unit uint8
}

// Failed says whether the request is an error (see Observation).
func (o Observation) Failed() bool { return errorKind(normCode(o.Code), o.Fault) >= 0 }

// NumUnits is the number of clusters of sticky keys a series counts apart.
const NumUnits = 16

// maxCode bounds the status codes kept apart. net/http accepts 100..999;
// anything outside 100..599 is recorded as code 0, "no valid status".
const maxCode = 599

func normCode(code int) int {
	if code < 100 || code > maxCode {
		return 0
	}
	return code
}

// errorKind returns the error kind of a request with normalized code and
// fault f, or -1 when it is not an error. Unknown faults count as gateway.
func errorKind(code int, f Fault) int {
	switch {
	case f > FaultGateway:
		return int(FaultGateway)
	case f != NoFault:
		return int(f)
	case code >= 500:
		return 0
	}
	return -1
}

// Defaults of Options, in one place.
const (
	DefaultSlot      = 10 * time.Second
	DefaultRetention = 15 * time.Minute

	// maxSlots bounds the ring of a series: each slot holds a latency
	// histogram of about 3.8 KB.
	maxSlots = 4096
)

// Options tunes a Registry. Zero values take the defaults.
type Options struct {
	Slot      time.Duration    // width of one window slot (default 10s)
	Retention time.Duration    // how far back windows can be queried (default 15m)
	Now       func() time.Time // clock (default time.Now)
}

// withDefaults fills zero fields and panics on options no caller should pass:
// they are set by code, not read from user config.
func (o Options) withDefaults() Options {
	if o.Slot == 0 {
		o.Slot = DefaultSlot
	}
	if o.Retention == 0 {
		o.Retention = DefaultRetention
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Slot < 0 || o.Retention < 0 {
		panic(fmt.Sprintf("metrics: negative Options.Slot (%v) or Options.Retention (%v)", o.Slot, o.Retention))
	}
	if n := o.slots(); n > maxSlots {
		panic(fmt.Sprintf("metrics: Options.Retention %v / Options.Slot %v needs %d slots per series, more than %d; use wider slots",
			o.Retention, o.Slot, n, maxSlots))
	}
	return o
}

// slots is the ring size: enough whole slots to cover Retention, plus the
// current one, which is only partly filled.
func (o Options) slots() int64 {
	return (int64(o.Retention)+int64(o.Slot)-1)/int64(o.Slot) + 1
}
