// Package notify tells the world outside Aviary about rollouts, and asks it for permission:
//
//   - [Webhooks] POSTs rollout events to the webhooks of the config, signed, retried with
//     backoff, in order per hook;
//   - [Gates] is the verdict source (a rollout.Judge) for gate steps: it polls an HTTP endpoint
//     until it says yes (2xx) or has failed too often in a row.
//
// What it must never do: block the controller. Both talk to endpoints that Aviary does not
// control and that may be slow, down or hostile, so all network I/O happens in background
// goroutines: [Webhooks.Send] only queues (dropping the oldest event of a full queue, and
// counting it), and [Gates.Verdict] only reads the latest answer. Neither may follow a proxy
// from the environment or a redirect by default, and neither writes a secret (a webhook's signing secret, or
// credentials and tokens in a URL's user info or query) into logs, metrics or verdicts.
package notify
