package runtime

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/warden-sec/warden/internal/events"
)

// Real NATS for the tests: one embedded server, or a 3-node JetStream
// cluster whose members route to each other over loopback.

const (
	testStream  = "EVENTS"
	testSubject = "warden.events."
	testBucket  = "detect"
	hdrNode     = "Warden-Node"
)

type natsNode struct {
	name string
	srv  *server.Server
}

// freePorts reserves n loopback ports (released before use: the cluster
// configuration needs every route's port before any server starts).
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	var ls []net.Listener
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		l.Close()
	}
	return ports
}

// startNATS starts n servers (a cluster when n > 1) with JetStream on.
func startNATS(t testing.TB, n int) []*natsNode {
	t.Helper()
	var routes []*url.URL
	var cports []int
	if n > 1 {
		cports = freePorts(t, n)
		for _, p := range cports {
			routes = append(routes, &url.URL{Scheme: "nats", Host: "127.0.0.1:" + strconv.Itoa(p)})
		}
	}
	nodes := make([]*natsNode, n)
	for i := range n {
		name := fmt.Sprintf("n%d", i+1)
		opts := &server.Options{
			ServerName: name,
			Host:       "127.0.0.1",
			Port:       -1,
			JetStream:  true,
			StoreDir:   t.TempDir(),
			NoLog:      true,
			NoSigs:     true,
		}
		if n > 1 {
			opts.Cluster = server.ClusterOpts{Name: "warden-test", Host: "127.0.0.1", Port: cports[i]}
			opts.Routes = routes
		}
		s, err := server.NewServer(opts)
		if err != nil {
			t.Fatal(err)
		}
		go s.Start()
		nodes[i] = &natsNode{name: name, srv: s}
		t.Cleanup(s.Shutdown)
	}
	for _, nd := range nodes {
		if !nd.srv.ReadyForConnections(20 * time.Second) {
			t.Fatalf("nats %s not ready", nd.name)
		}
	}
	return nodes
}

func connect(t testing.TB, nd *natsNode) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(nd.srv.ClientURL(), nats.MaxReconnects(-1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return nc, js
}

// setupJetStream makes the event stream and the detection bucket with the
// given replication, retrying while a cluster elects its meta leader.
func setupJetStream(t testing.TB, js jetstream.JetStream, replicas int) {
	t.Helper()
	waitFor(t, 30*time.Second, "stream and bucket created", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
			Name: testStream, Subjects: []string{testSubject + ">"}, Replicas: replicas,
		}); err != nil {
			t.Logf("create stream: %v", err)
			return false
		}
		if _, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket: testBucket, Replicas: replicas, History: 1,
		}); err != nil {
			t.Logf("create bucket: %v", err)
			return false
		}
		return true
	})
}

func openKV(t testing.TB, js jetstream.JetStream) jetstream.KeyValue {
	t.Helper()
	var kv jetstream.KeyValue
	waitFor(t, 30*time.Second, "bucket opened", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		var err error
		kv, err = js.KeyValue(ctx, testBucket)
		return err == nil
	})
	return kv
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for: %s", d, what)
		}
		time.Sleep(20 * time.Millisecond) // polling interval, not synchronization
	}
}

// jsStream is the Stream the runtime consumes, over a JetStream stream
// holding one message per batch: JSON lines, the node in a header — the
// plane's format (design12.md).
type jsStream struct {
	js     jetstream.JetStream
	stream string
}

func (s *jsStream) LastSeq(ctx context.Context) (uint64, error) {
	st, err := s.js.Stream(ctx, s.stream)
	if err != nil {
		return 0, err
	}
	info, err := st.Info(ctx)
	if err != nil {
		return 0, err
	}
	return info.State.LastSeq, nil
}

func (s *jsStream) Consume(ctx context.Context, from uint64, fn func(events.Batch) error) error {
	cfg := jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy}
	if from > 1 {
		cfg = jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: from}
	}
	cons, err := s.js.OrderedConsumer(ctx, s.stream, cfg)
	if err != nil {
		return err
	}
	it, err := cons.Messages()
	if err != nil {
		return err
	}
	defer it.Stop()
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	for {
		msg, err := it.Next()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return err
		}
		md, err := msg.Metadata()
		if err != nil {
			return err
		}
		b := events.Batch{StreamSeq: md.Sequence.Stream, Node: msg.Headers().Get(hdrNode)}
		sc := bufio.NewScanner(bytes.NewReader(msg.Data()))
		sc.Buffer(nil, events.MaxEventBytes+1)
		for sc.Scan() {
			var ev events.Event
			if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
				return fmt.Errorf("batch %d: %w", b.StreamSeq, err)
			}
			b.Events = append(b.Events, ev)
		}
		if err := fn(b); err != nil {
			return err
		}
	}
}

// publish stores one batch and returns its stream sequence.
func publish(ctx context.Context, js jetstream.JetStream, node, id string, evs []events.Event) (uint64, error) {
	var buf bytes.Buffer
	for _, ev := range evs {
		line, err := json.Marshal(ev)
		if err != nil {
			return 0, err
		}
		buf.Write(line)
		buf.WriteByte('\n')
	}
	msg := &nats.Msg{Subject: testSubject + node, Data: buf.Bytes(), Header: nats.Header{}}
	msg.Header.Set(hdrNode, node)
	msg.Header.Set(jetstream.MsgIDHeader, id) // a retried publish is stored once
	ack, err := js.PublishMsg(ctx, msg)
	if err != nil {
		return 0, err
	}
	return ack.Sequence, nil
}

// publishRetry publishes until stored (a cluster may be electing a
// stream leader after a kill).
func publishRetry(t testing.TB, js jetstream.JetStream, node, id string, evs []events.Event) uint64 {
	t.Helper()
	var seq uint64
	waitFor(t, 30*time.Second, "batch stored", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		var err error
		seq, err = publish(ctx, js, node, id, evs)
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			t.Logf("publish: %v", err)
		}
		return err == nil
	})
	return seq
}
