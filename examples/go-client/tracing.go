package main

// Trace context propagation (OpenTelemetry, W3C traceparent). The submission runs in a client
// span whose context goes with the call (gRPC metadata, for the API server's span) and with
// every task it creates (the label taskflow.dev/traceparent, for the worker's span; DAG steps
// included). Its parent is the TRACEPARENT environment variable when set, so a shell script
// or a CI job can put the submission in its own trace. With -trace the finished spans are
// printed as JSON on stderr.

import (
	"context"
	"os"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/metadata"

	taskflowv1 "taskflow.dev/examples/go-client/gen/taskflowv1"
)

// traceparentLabel is the task label the engine reads the submission's trace context from.
const traceparentLabel = "taskflow.dev/traceparent"

var propagator = propagation.NewCompositeTextMapPropagator(
	propagation.TraceContext{}, propagation.Baggage{},
)

// setupTracing installs a tracer provider that prints spans on stderr when record is set
// (otherwise spans are not recorded, but the parent's context still propagates). It returns
// the function that flushes the spans, and the context to start from (TRACEPARENT's).
func setupTracing(record bool) (context.Context, func(context.Context) error, error) {
	otel.SetTextMapPropagator(propagator)
	shutdown := func(context.Context) error { return nil }
	if record {
		exporter, err := stdouttrace.New(stdouttrace.WithWriter(os.Stderr))
		if err != nil {
			return nil, nil, err
		}
		provider := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exporter))
		otel.SetTracerProvider(provider)
		shutdown = provider.Shutdown
	}
	carrier := propagation.MapCarrier{}
	if tp := os.Getenv("TRACEPARENT"); tp != "" {
		carrier.Set("traceparent", tp)
		if ts := os.Getenv("TRACESTATE"); ts != "" {
			carrier.Set("tracestate", ts)
		}
	}
	return propagator.Extract(context.Background(), carrier), shutdown, nil
}

// startSubmit starts the client span of a submission and returns the context to call with
// (the trace context in its outgoing metadata) and the traceparent the tasks carry ("" when
// there is no trace).
func startSubmit(ctx context.Context, method string) (context.Context, trace.Span, string) {
	ctx, span := otel.Tracer("taskflow.dev/examples/go-client").Start(
		ctx, "taskflow.v1.TaskService/"+method,
		trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(
			attribute.String("rpc.system", "grpc"),
			attribute.String("rpc.service", "taskflow.v1.TaskService"),
			attribute.String("rpc.method", method),
		),
	)
	carrier := propagation.MapCarrier{}
	propagator.Inject(ctx, carrier)
	for _, key := range carrier.Keys() {
		ctx = metadata.AppendToOutgoingContext(ctx, key, carrier.Get(key))
	}
	return ctx, span, carrier.Get("traceparent")
}

// label gives a task spec the submission's trace context, unless it has one already.
func label(spec *taskflowv1.TaskSpec, traceparent string) {
	if traceparent == "" {
		return
	}
	if spec.Labels == nil {
		spec.Labels = map[string]string{}
	}
	if _, set := spec.Labels[traceparentLabel]; !set {
		spec.Labels[traceparentLabel] = traceparent
	}
}
