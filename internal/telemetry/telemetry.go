package telemetry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.41.0"
	"go.opentelemetry.io/otel/trace"
)

// Options configures a Telemetry. Zero values take the defaults noted.
type Options struct {
	// Endpoint is the collector's OTLP/HTTP base URL, e.g. http://127.0.0.1:4318; spans go to
	// {Endpoint}/v1/traces and metrics to {Endpoint}/v1/metrics. "" turns telemetry off.
	Endpoint string
	// Headers are sent with every export (an API key, a tenant).
	Headers map[string]string
	// Interval is how often metrics are exported, and ServiceName the resource's service.name:
	// telemetry.otlp.interval and serviceName as config gives them, defaults applied.
	Interval    time.Duration
	ServiceName string
	// Logger gets export failures; nil discards them.
	Logger *slog.Logger
}

// scope is the instrumentation scope of the spans and metrics.
const scope = "aviary.dev/aviary/internal/telemetry"

// logEvery is the least time between two logged export failures of one signal; the ones in
// between are counted in the next message.
const logEvery = time.Minute

// Telemetry exports LLM exchanges and evaluations. Safe for concurrent use; a nil *Telemetry,
// like one made without an endpoint, does nothing.
type Telemetry struct {
	tp     *sdktrace.TracerProvider // nil when off
	mp     *sdkmetric.MeterProvider
	tracer trace.Tracer
	inst   instruments
	fail   *failures

	shutdownOnce sync.Once
	shutdownErr  error
}

// New starts exporting to o.Endpoint, or returns a Telemetry that does nothing when it is empty.
// It contacts no collector: an unreachable one shows as logged export failures, never as an
// error here.
func New(ctx context.Context, o Options) (*Telemetry, error) {
	if o.Endpoint == "" {
		return &Telemetry{}, nil
	}
	base, err := baseURL(o.Endpoint)
	if err != nil {
		return nil, err
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	fail := &failures{log: o.Logger, endpoint: base}

	spans, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(base+"/v1/traces"),
		otlptracehttp.WithHeaders(o.Headers), otlptracehttp.WithCompression(otlptracehttp.GzipCompression))
	if err != nil {
		return nil, fmt.Errorf("telemetry trace exporter for %s: %w", base, err)
	}
	metrics, err := otlpmetrichttp.New(ctx, otlpmetrichttp.WithEndpointURL(base+"/v1/metrics"),
		otlpmetrichttp.WithHeaders(o.Headers), otlpmetrichttp.WithCompression(otlpmetrichttp.GzipCompression))
	if err != nil {
		_ = spans.Shutdown(ctx)
		return nil, fmt.Errorf("telemetry metric exporter for %s: %w", base, err)
	}

	// The default resource reads OTEL_RESOURCE_ATTRIBUTES; service.name is ours. Both are
	// schemaless, so the merge cannot conflict.
	res, err := resource.Merge(resource.Default(),
		resource.NewSchemaless(semconv.ServiceNameKey.String(o.ServiceName)))
	if err != nil {
		res = resource.Default()
	}
	t := &Telemetry{fail: fail}
	// The batch span processor drops spans when its queue is full rather than block the
	// caller (BlockOnQueueFull is off by default); that is the "never blocks" of Exchange.
	t.tp = sdktrace.NewTracerProvider(sdktrace.WithResource(res),
		sdktrace.WithBatcher(spanExporter{spans, fail}))
	t.mp = sdkmetric.NewMeterProvider(sdkmetric.WithResource(res),
		sdkmetric.WithReader(sdkmetric.NewPeriodicReader(metricExporter{metrics, fail}, sdkmetric.WithInterval(o.Interval))))
	t.tracer = t.tp.Tracer(scope, trace.WithSchemaURL(semconv.SchemaURL))
	if t.inst, err = newInstruments(t.mp.Meter(scope, metric.WithSchemaURL(semconv.SchemaURL))); err != nil {
		_ = t.Shutdown(ctx)
		return nil, fmt.Errorf("telemetry instruments: %w", err)
	}
	return t, nil
}

// baseURL checks an OTLP/HTTP base URL and returns it without a trailing slash.
func baseURL(endpoint string) (string, error) {
	u, err := url.Parse(endpoint)
	if err == nil && (u.Scheme != "http" && u.Scheme != "https" || u.Host == "" || u.RawQuery != "" || u.Fragment != "") {
		err = errors.New("want an http or https URL with a host and no query, such as http://127.0.0.1:4318")
	}
	if err != nil {
		return "", fmt.Errorf("telemetry endpoint %q: %w", endpoint, err)
	}
	return strings.TrimSuffix(u.String(), "/"), nil
}

// Shutdown exports what is pending and stops the exporters. It returns when done or when ctx
// ends, whichever comes first; an export that failed on the way is in the error. Only the first
// call does anything.
func (t *Telemetry) Shutdown(ctx context.Context) error {
	if t == nil || t.tp == nil {
		return nil
	}
	t.shutdownOnce.Do(func() {
		t.fail.closing()
		done := make(chan error, 1)
		// The SDK's metric reader waits for a running export without heeding ctx; waiting
		// here instead keeps Shutdown within ctx even when the collector hangs.
		go func() {
			// ForceFlush reports a failed span export; Shutdown alone only logs it.
			done <- errors.Join(t.tp.ForceFlush(ctx), t.tp.Shutdown(ctx), t.mp.Shutdown(ctx))
		}()
		var err error
		select {
		case err = <-done:
		case <-ctx.Done():
			err = ctx.Err()
		}
		t.shutdownErr = errors.Join(err, t.fail.final())
		if t.shutdownErr != nil {
			t.shutdownErr = fmt.Errorf("telemetry flush to %s: %w", t.fail.endpoint, t.shutdownErr)
		}
	})
	return t.shutdownErr
}

// failures logs failed exports without flooding the log when the collector is down: at most one
// message per signal per logEvery, with the count of those not logged. The OpenTelemetry SDK
// would otherwise hand each failure to its global error handler.
type failures struct {
	log      *slog.Logger
	endpoint string

	mu       sync.Mutex
	last     map[string]time.Time // by signal
	skipped  map[string]int
	shutdown bool
	err      error // the first failure after closing, for Shutdown to return
}

func (f *failures) report(signal string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.shutdown {
		if f.err == nil {
			f.err = fmt.Errorf("export %s: %w", signal, err)
		}
		return
	}
	if f.last == nil {
		f.last, f.skipped = map[string]time.Time{}, map[string]int{}
	}
	now := time.Now()
	if last, ok := f.last[signal]; ok && now.Sub(last) < logEvery {
		f.skipped[signal]++
		return
	}
	f.log.Warn("telemetry export failed; the data is dropped", "signal", signal, "endpoint", f.endpoint,
		"err", err, "failuresNotLogged", f.skipped[signal])
	f.last[signal], f.skipped[signal] = now, 0
}

func (f *failures) closing() {
	f.mu.Lock()
	f.shutdown = true
	f.mu.Unlock()
}

func (f *failures) final() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.err
}

// spanExporter and metricExporter report failures to failures instead of returning them to the
// SDK, which would pass them to its process-wide error handler.
type spanExporter struct {
	sdktrace.SpanExporter
	fail *failures
}

func (e spanExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	if err := e.SpanExporter.ExportSpans(ctx, spans); err != nil {
		e.fail.report("traces", err)
	}
	return nil
}

type metricExporter struct {
	sdkmetric.Exporter
	fail *failures
}

func (e metricExporter) Export(ctx context.Context, rm *metricdata.ResourceMetrics) error {
	if err := e.Exporter.Export(ctx, rm); err != nil {
		e.fail.report("metrics", err)
	}
	return nil
}
