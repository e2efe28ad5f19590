// Command agentload measures the agent's cost while it tails a busy log:
// it appends -rate lines a second to a file while an agent process (this
// program re-executed with -agent: internal/agent/tail and
// internal/agent/ship, as `warden agent` runs them) tails it and ships the
// events over mutual TLS to a local HTTPS server that stands in for
// POST /v1/events (it decompresses, counts the lines and answers 200).
//
// Measured, for the agent process only: CPU time (user+system, from
// getrusage of the child once it exits), peak RSS (ru_maxrss), and the Go
// heap (runtime.MemStats at the end, reported by the agent). The writer and
// the server run in the parent process and are not counted. Every line
// written must reach the server, else it fails.
//
// Usage:
//
//	go run ./bench/agentload -rate 5000 -d 30s [-parser sshd]
package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/warden-sec/warden/internal/agent/ship"
	"github.com/warden-sec/warden/internal/agent/tail"
	"github.com/warden-sec/warden/internal/events/parse"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "agentload:", err)
		os.Exit(1)
	}
}

// agentArgs is what the parent hands the agent process.
type agentArgs struct {
	Server, CACert, Cert, Key, DataDir, Log string
	Parser, CPUProfile                      string
	Duration                                time.Duration
}

// agentReport is what the agent process prints at its end.
type agentReport struct {
	HeapInuse, HeapSys, Sys uint64
	Spooled, Sent           uint64
}

func run() error {
	rate := flag.Int("rate", 5000, "lines a second appended to the file")
	dur := flag.Duration("d", 30*time.Second, "how long lines are written (at most 10m)")
	parser := flag.String("parser", "sshd", "the file source's parser (parse.Names)")
	cpuProfile := flag.String("cpuprofile", "", "write the agent process's CPU profile to this file")
	agentMode := flag.String("agent", "", "internal: run as the agent process with these JSON arguments")
	flag.Parse()
	if *agentMode != "" {
		return runAgent(*agentMode)
	}
	if *dur > 10*time.Minute || *rate <= 0 {
		return errors.New("-d at most 10m, -rate positive")
	}
	dir, err := os.MkdirTemp("", "agentload-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	pool, certFile, keyFile, err := makePKI(dir)
	if err != nil {
		return err
	}
	var received, unparsed atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			http.Error(w, `{"errors":["gzip"]}`, 400)
			return
		}
		sc := bufio.NewScanner(zr)
		sc.Buffer(nil, 1<<20)
		n := 0
		for sc.Scan() {
			n++
			if bytes.Contains(sc.Bytes(), []byte(`"error.message"`)) {
				unparsed.Add(1)
			}
		}
		received.Add(int64(n))
		fmt.Fprintf(w, `{"events":%d,"duplicate":false,"stream_seq":1}`, n)
	}))
	srv.TLS = &tls.Config{ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool}
	srv.StartTLS()
	defer srv.Close()
	caFile := filepath.Join(dir, "server-ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o644); err != nil {
		return err
	}
	logPath := filepath.Join(dir, "auth.log")
	if err := os.WriteFile(logPath, nil, 0o644); err != nil {
		return err
	}
	args, _ := json.Marshal(agentArgs{Server: srv.URL, CACert: caFile, Cert: certFile, Key: keyFile,
		DataDir: filepath.Join(dir, "agent"), Log: logPath, Duration: *dur + 5*time.Second, Parser: *parser, CPUProfile: *cpuProfile})
	self, err := os.Executable()
	if err != nil {
		return err
	}
	cmd := exec.Command(self, "-agent", string(args))
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	// The writer: every 10ms, the lines due by then, in one write.
	f, err := os.OpenFile(logPath, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	start := time.Now()
	written := 0
	tick := time.NewTicker(10 * time.Millisecond)
	var b strings.Builder
	for now := range tick.C {
		el := now.Sub(start)
		if el > *dur {
			break
		}
		due := int(el.Seconds() * float64(*rate))
		b.Reset()
		for ; written < due; written++ {
			fmt.Fprintf(&b, "Dec  2 10:%02d:%02d web-1 sshd[%d]: Failed password for invalid user admin%d from 203.0.113.%d port %d ssh2\n",
				written/60%60, written%60, 1000+written%5000, written%97, written%250, 1024+written%60000)
		}
		if _, err := f.WriteString(b.String()); err != nil {
			return err
		}
	}
	tick.Stop()
	f.Close()
	wall := time.Since(start)
	var rep agentReport
	if err := json.NewDecoder(out).Decode(&rep); err != nil {
		return fmt.Errorf("agent report: %w", err)
	}
	if err := cmd.Wait(); err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	life := wall + 5*time.Second
	fmt.Printf("parser %s: lines written %d in %s (%.0f/s); received by the server %d (%d did not parse)\n", *parser, written,
		wall.Round(time.Millisecond), float64(written)/wall.Seconds(), received.Load(), unparsed.Load())
	fmt.Printf("agent process: CPU %s user+sys over %s = %.1f%% of one core (%.1f µs/line); peak RSS %.1f MiB; Go heap in use %.1f MiB, from the OS %.1f MiB\n",
		cpu.Round(time.Millisecond), life.Round(time.Second), 100*cpu.Seconds()/life.Seconds(), float64(cpu.Microseconds())/float64(max(written, 1)),
		float64(ru.Maxrss)/1024, float64(rep.HeapInuse)/(1<<20), float64(rep.Sys)/(1<<20))
	if received.Load() != int64(written) {
		return fmt.Errorf("the server received %d lines of %d", received.Load(), written)
	}
	return nil
}

func runAgent(raw string) error {
	var a agentArgs
	if err := json.Unmarshal([]byte(raw), &a); err != nil {
		return err
	}
	if a.CPUProfile != "" {
		f, err := os.Create(a.CPUProfile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	p, err := parse.New(a.Parser, parse.Options{})
	if err != nil {
		return err
	}
	tl, err := tail.New(tail.Config{Path: a.Log, Parser: p, Raw: parse.Raw})
	if err != nil {
		return err
	}
	s, err := ship.New(ship.Config{Servers: []string{a.Server}, CACertFile: a.CACert, CertFile: a.Cert, KeyFile: a.Key, DataDir: a.DataDir})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), a.Duration)
	defer cancel()
	if err := s.Start(tl); err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	// Stop once everything read was acknowledged and the deadline passed.
	<-ctx.Done()
	if err := <-done; err != nil {
		return err
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	st := s.Stats()
	return json.NewEncoder(os.Stdout).Encode(agentReport{HeapInuse: ms.HeapInuse, HeapSys: ms.HeapSys, Sys: ms.Sys,
		Spooled: st.EventsSpooled, Sent: st.EventsSent})
}

// makePKI makes a CA and the node's client certificate.
func makePKI(dir string) (*x509.CertPool, string, string, error) {
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "agentload CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, "", "", err
	}
	ca, _ := x509.ParseCertificate(der)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leaf := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "web-1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, KeyUsage: x509.KeyUsageDigitalSignature}
	lder, err := x509.CreateCertificate(rand.Reader, leaf, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, "", "", err
	}
	kd, _ := x509.MarshalPKCS8PrivateKey(key)
	certFile, keyFile := filepath.Join(dir, "svid.pem"), filepath.Join(dir, "svid-key.pem")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kd}), 0o600); err != nil {
		return nil, "", "", err
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: lder}), 0o644); err != nil {
		return nil, "", "", err
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return pool, certFile, keyFile, nil
}
