package k8s

import (
	"time"

	eventsv1 "k8s.io/api/events/v1"
)

// EventTime is when a Kubernetes Event last happened: its series' last observation, else its
// event time, else its deprecated last timestamp, else its creation.
func EventTime(e eventsv1.Event) time.Time {
	switch {
	case e.Series != nil && !e.Series.LastObservedTime.IsZero():
		return e.Series.LastObservedTime.Time
	case !e.EventTime.IsZero():
		return e.EventTime.Time
	case !e.DeprecatedLastTimestamp.IsZero():
		return e.DeprecatedLastTimestamp.Time
	}
	return e.CreationTimestamp.Time
}
