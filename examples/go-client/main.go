// Command go-client submits one TaskFlow task, follows it until it finishes and prints
// {"task_id": ..., "state": ..., "result": ...} as one JSON line. It exits 0 when the task
// succeeded and 1 otherwise.
//
//	go-client -queue emails -handler send_email -payload '{"to":"a@b.c"}' -timeout 60s
//
// With -dag FILE it submits a DAG run instead: FILE is JSON, {"queue": ..., "failure_policy":
// ..., "steps": [{"name": ..., "handler": ..., "payload": ..., "depends_on": [...]}, ...]},
// and it prints {"run_id": ..., "state": ..., "steps": {name: state}}.
//
// The server address comes from -addr, else TASKFLOW_API_ADDR, else localhost:50051; the
// token, when the server wants one, from TASKFLOW_API_TOKEN. The submission's OpenTelemetry
// trace context travels with its tasks (tracing.go): its parent is TRACEPARENT when set, and
// -trace prints the client's span as JSON on stderr.
//
// TLS: -tls (or TASKFLOW_API_TLS=1) with the system's CAs; -ca FILE (TASKFLOW_API_CA) trusts
// that PEM CA bundle instead; -cert and -key (TASKFLOW_API_CERT, TASKFLOW_API_KEY) present a
// client certificate (mutual TLS). Giving -ca, -cert or -key turns TLS on.
package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	taskflowv1 "taskflow.dev/examples/go-client/gen/taskflowv1"
)

// dagFile is the JSON form of a DAG run, as the Python CLI's YAML files have it.
type dagFile struct {
	Queue         string `json:"queue"`
	Name          string `json:"name"`
	FailurePolicy string `json:"failure_policy"`
	Steps         []struct {
		Name      string          `json:"name"`
		Handler   string          `json:"handler"`
		Payload   json.RawMessage `json:"payload"`
		Queue     string          `json:"queue"`
		DependsOn []string        `json:"depends_on"`
	} `json:"steps"`
}

type runOutcome struct {
	RunID string            `json:"run_id"`
	State string            `json:"state"`
	Steps map[string]string `json:"steps"`
}

type outcome struct {
	TaskID string          `json:"task_id"`
	State  string          `json:"state"`
	Result json.RawMessage `json:"result"`
	Error  string          `json:"error,omitempty"`
}

func envOr(key, fallback string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return fallback
}

func terminal(state string) bool {
	return state == "succeeded" || state == "failed" || state == "cancelled"
}

func randomKey() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

// follow reads WatchTask snapshots until the task is terminal, reopening the stream when the
// server is briefly unavailable.
func follow(ctx context.Context, client taskflowv1.TaskServiceClient, id string) (*taskflowv1.Task, error) {
	for {
		stream, err := client.WatchTask(ctx, &taskflowv1.WatchTaskRequest{TaskId: id})
		if err == nil {
			for {
				task, recvErr := stream.Recv()
				if recvErr != nil {
					err = recvErr
					break
				}
				if terminal(task.GetState()) {
					return task, nil
				}
			}
		}
		if !errors.Is(err, io.EOF) && status.Code(err) != codes.Unavailable {
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// followRun reads WatchDagRun snapshots until the run has finished, reopening the stream
// when the server is briefly unavailable.
func followRun(ctx context.Context, client taskflowv1.TaskServiceClient, id string) (*taskflowv1.DagRun, error) {
	for {
		stream, err := client.WatchDagRun(ctx, &taskflowv1.WatchDagRunRequest{RunId: id})
		if err == nil {
			for {
				run, recvErr := stream.Recv()
				if recvErr != nil {
					err = recvErr
					break
				}
				if run.GetState() != "running" {
					return run, nil
				}
			}
		}
		if !errors.Is(err, io.EOF) && status.Code(err) != codes.Unavailable {
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// submitDag submits the run of path (idempotently) and follows it to its end.
func submitDag(ctx context.Context, client taskflowv1.TaskServiceClient, namespace, path string) (int, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return 2, err
	}
	var file dagFile
	if err := json.Unmarshal(raw, &file); err != nil {
		return 2, fmt.Errorf("%s: %w", path, err)
	}
	key, err := randomKey()
	if err != nil {
		return 1, err
	}
	spec := &taskflowv1.DagSpec{
		Namespace:      namespace,
		Queue:          file.Queue,
		Name:           file.Name,
		FailurePolicy:  file.FailurePolicy,
		IdempotencyKey: key,
	}
	for _, step := range file.Steps {
		payload := ""
		if len(step.Payload) > 0 {
			payload = string(step.Payload)
		}
		spec.Steps = append(spec.Steps, &taskflowv1.DagStep{
			Name:      step.Name,
			DependsOn: step.DependsOn,
			Task:      &taskflowv1.TaskSpec{Queue: step.Queue, Handler: step.Handler, PayloadJson: payload},
		})
	}
	callCtx, span, traceparent := startSubmit(ctx, "SubmitDag")
	for _, step := range spec.Steps {
		label(step.Task, traceparent)
	}
	submitted, err := client.SubmitDag(callCtx, &taskflowv1.SubmitDagRequest{Dag: spec}, grpc.WaitForReady(true))
	span.End()
	if err != nil {
		return 1, fmt.Errorf("submit: %w", err)
	}
	run, err := followRun(ctx, client, submitted.GetRunId())
	if err != nil {
		return 1, fmt.Errorf("watch %s: %w", submitted.GetRunId(), err)
	}
	steps := map[string]string{}
	for _, step := range run.GetSteps() {
		steps[step.GetName()] = step.GetState()
	}
	line, err := json.Marshal(runOutcome{RunID: run.GetId(), State: run.GetState(), Steps: steps})
	if err != nil {
		return 1, err
	}
	fmt.Println(string(line))
	if run.GetState() != "succeeded" {
		return 1, nil
	}
	return 0, nil
}

// transportCredentials is plaintext unless TLS is asked for or a CA, certificate or key is given.
func transportCredentials(useTLS bool, ca, cert, key string) (credentials.TransportCredentials, error) {
	if !useTLS && ca == "" && cert == "" && key == "" {
		return insecure.NewCredentials(), nil
	}
	config := &tls.Config{MinVersion: tls.VersionTLS12}
	if ca != "" {
		pem, err := os.ReadFile(ca)
		if err != nil {
			return nil, fmt.Errorf("-ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("-ca: no PEM certificate in %s", ca)
		}
		config.RootCAs = pool
	}
	if (cert == "") != (key == "") {
		return nil, errors.New("-cert and -key go together")
	}
	if cert != "" {
		pair, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			return nil, fmt.Errorf("-cert/-key: %w", err)
		}
		config.Certificates = []tls.Certificate{pair}
	}
	return credentials.NewTLS(config), nil
}

func run() (int, error) {
	addr := flag.String("addr", envOr("TASKFLOW_API_ADDR", "localhost:50051"), "API server address")
	namespace := flag.String("namespace", "default", "namespace of the queue")
	queue := flag.String("queue", "default", "queue to submit to")
	handler := flag.String("handler", "", "handler name (required)")
	payload := flag.String("payload", "", "task payload as JSON")
	timeout := flag.Duration("timeout", time.Minute, "how long to wait for the task to finish")
	dag := flag.String("dag", "", "submit the DAG run of this JSON file instead of one task")
	record := flag.Bool("trace", false, "record the submission's span and print it on stderr")
	useTLS := flag.Bool("tls", envOr("TASKFLOW_API_TLS", "") == "1", "connect with TLS")
	ca := flag.String("ca", os.Getenv("TASKFLOW_API_CA"), "PEM CA bundle to trust (implies -tls)")
	cert := flag.String("cert", os.Getenv("TASKFLOW_API_CERT"), "PEM client certificate (mutual TLS)")
	keyFile := flag.String("key", os.Getenv("TASKFLOW_API_KEY"), "PEM key of -cert")
	flag.Parse()

	if *handler == "" && *dag == "" {
		return 2, errors.New("-handler is required")
	}
	if *payload != "" && !json.Valid([]byte(*payload)) {
		return 2, errors.New("-payload is not valid JSON")
	}

	creds, err := transportCredentials(*useTLS, *ca, *cert, *keyFile)
	if err != nil {
		return 2, err
	}
	conn, err := grpc.NewClient(*addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		return 1, err
	}
	defer conn.Close()
	client := taskflowv1.NewTaskServiceClient(conn)

	traced, flush, err := setupTracing(*record)
	if err != nil {
		return 1, err
	}
	defer func() { _ = flush(context.Background()) }()
	ctx, cancel := context.WithTimeout(traced, *timeout)
	defer cancel()
	if token := os.Getenv("TASKFLOW_API_TOKEN"); token != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
	}
	if *dag != "" {
		return submitDag(ctx, client, *namespace, *dag)
	}

	// The key makes the submission safe to repeat: the server returns the same task.
	key, err := randomKey()
	if err != nil {
		return 1, err
	}
	spec := &taskflowv1.TaskSpec{
		Namespace:      *namespace,
		Queue:          *queue,
		Handler:        *handler,
		PayloadJson:    *payload,
		IdempotencyKey: key,
	}
	callCtx, span, traceparent := startSubmit(ctx, "SubmitTask")
	label(spec, traceparent)
	submitted, err := client.SubmitTask(callCtx, &taskflowv1.SubmitTaskRequest{Task: spec}, grpc.WaitForReady(true))
	span.End()
	if err != nil {
		return 1, fmt.Errorf("submit: %w", err)
	}

	task, err := follow(ctx, client, submitted.GetTaskId())
	if err != nil {
		return 1, fmt.Errorf("watch %s: %w", submitted.GetTaskId(), err)
	}

	result := json.RawMessage("null")
	if task.GetResultJson() != "" {
		result = json.RawMessage(task.GetResultJson())
	}
	line, err := json.Marshal(outcome{
		TaskID: task.GetId(),
		State:  task.GetState(),
		Result: result,
		Error:  task.GetError(),
	})
	if err != nil {
		return 1, err
	}
	fmt.Println(string(line))
	if task.GetState() != "succeeded" {
		return 1, nil
	}
	return 0, nil
}

func main() {
	code, err := run()
	if err != nil {
		fmt.Fprintln(os.Stderr, "go-client:", err)
	}
	os.Exit(code)
}
