// Package metrics records what the gateway sees of every proxied request, per
// service, version and role, and answers two kinds of readers:
//
//   - the analysis judge, in process, with rolling windows ("canary v2 against
//     stable v1 since T"): counts by status class and error kind, bytes, and a
//     latency histogram merged over the window (see [Series.Window]);
//   - Prometheus, with cumulative figures read at scrape time by a custom
//     collector (see [Registry.Collect]); the hot path never calls the client
//     library.
//
// What it must never do: block or allocate on the hot path. [Series.Begin] and
// [Series.End] only do atomic loads and adds on memory allocated when the
// series was created. The one exception is the first observation of a new
// window slot (once per slot length per series), which takes the series' own
// mutex to clear the oldest slot for reuse; it still allocates nothing.
//
// The latency histogram is written here by hand rather than taken from a
// sketch library (DDSketch, HDR histogram, t-digest): those are not safe for
// concurrent recording, or lock around it, or allocate as they grow, while the
// gateway needs lock-free atomic recording into fixed buckets from many
// goroutines at once. Fixed log buckets give a known relative accuracy and
// merge by adding counts, which is all the windows and the judge need.
package metrics
