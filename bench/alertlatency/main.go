// Command alertlatency measures the time from a log line written to the
// alert it raises: it appends, again and again, ten failed SSH logins from
// a new address to a file that a running `warden agent` tails with the
// sshd parser, and follows GET /v1/alerts/stream until the built-in SSH
// brute-force rule reports that address. The time counted runs from the
// tenth line's write to the alert's arrival on the stream: the agent's
// tail and batching, the transport, the stream, detection, the alert's
// Raft commit and the stream's delivery.
//
// It prints the percentiles over -n attempts. It only talks to a loopback
// server and stops by itself (-n attempts, each bounded by -timeout).
//
// Usage (a server with the built-in pack, and an agent tailing FILE):
//
//	WARDEN_ADDR=https://127.0.0.1:8200 WARDEN_CACERT=... WARDEN_TOKEN=<root> \
//	  go run ./bench/alertlatency -log FILE -n 100
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/warden-sec/warden/pkg/client"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "alertlatency:", err)
		os.Exit(1)
	}
}

func run() error {
	logFile := flag.String("log", "", "the file a running agent tails with parser sshd")
	n := flag.Int("n", 100, "attempts (at most 10,000)")
	gap := flag.Duration("gap", 200*time.Millisecond, "pause between attempts")
	timeout := flag.Duration("timeout", 30*time.Second, "give up on one attempt after this")
	flag.Parse()
	if *logFile == "" || *n < 1 || *n > 10000 {
		return errors.New("-log FILE is required and -n must be 1..10000")
	}
	c, err := client.New(client.ConfigFromEnv())
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	var mu sync.Mutex
	seen := map[string]chan time.Time{}
	want := func(ip string) chan time.Time {
		mu.Lock()
		defer mu.Unlock()
		ch := seen[ip]
		if ch == nil {
			ch = make(chan time.Time, 1)
			seen[ip] = ch
		}
		return ch
	}
	watchErr := make(chan error, 1)
	go func() {
		watchErr <- c.AlertWatch(ctx, 0, func(a client.Alert, _ uint64) error {
			if a.RuleTitle != "SSH brute force" {
				return nil
			}
			select {
			case want(a.Group["source.ip"]) <- time.Now():
			default:
			}
			return nil
		})
	}()

	f, err := os.OpenFile(*logFile, os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	run := time.Now().UnixNano() % 200
	var lat []time.Duration
	for i := 0; i < *n; i++ {
		ip := fmt.Sprintf("10.%d.%d.%d", run, i/250, i%250+1)
		ch := want(ip)
		ts := time.Now().Format(time.Stamp)
		var buf []byte
		for j := 0; j < 10; j++ {
			buf = fmt.Appendf(buf, "%s bench sshd[%d]: Failed password for root from %s port %d ssh2\n", ts, 1000+j, ip, 40000+j)
		}
		if _, err := f.Write(buf); err != nil {
			return err
		}
		t0 := time.Now()
		select {
		case t1 := <-ch:
			lat = append(lat, t1.Sub(t0))
		case err := <-watchErr:
			return fmt.Errorf("alert stream: %w", err)
		case <-time.After(*timeout):
			return fmt.Errorf("attempt %d (%s): no alert within %s", i, ip, *timeout)
		}
		time.Sleep(*gap) // spacing attempts, not synchronization
	}
	sort.Slice(lat, func(a, b int) bool { return lat[a] < lat[b] })
	pct := func(p float64) time.Duration { return lat[min(len(lat)-1, int(p/100*float64(len(lat))))] }
	fmt.Printf("alertlatency: %d attempts, line written → alert on the stream: p50 %s  p90 %s  p99 %s  max %s\n",
		len(lat), pct(50).Round(time.Millisecond), pct(90).Round(time.Millisecond), pct(99).Round(time.Millisecond), lat[len(lat)-1].Round(time.Millisecond))
	return nil
}
