// Package rollout is Aviary's rollout controller: the domain types (State, Status, Event), the
// strategies compiled into steps, and the step function that moves a rollout forward.
//
// The core is pure. Tick(state, input) and Do(state, command) return the next state and the
// events that explain it; they read the time only from their input and do no I/O. Everything
// else — the store, the gateway, verdict sources, webhooks — sits in the Controller, a thin loop
// that gathers observations, calls the core, writes the new state durably and only then applies
// its traffic plan. So a crash at any moment leaves a state on disk that was either never served
// or is being served, and a restart serves exactly that state.
//
// This package must never import Kubernetes types or the gateway's internals: it speaks in
// config.Service and plain structs, and the gateway and the Kubernetes adapters convert at the edge.
package rollout
