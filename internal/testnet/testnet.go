// Package testnet gives tests loopback addresses that a process can be
// restarted on. Tests only.
//
// An address from 127.0.0.1:0 is in the kernel's ephemeral range: while
// its process is down (killed, to be restarted), any listener on port 0
// and any outgoing connection elsewhere — another test package running in
// parallel, its NATS servers, its clients — may be given the same port,
// and the restart fails or talks to a stranger. Ports below the ephemeral
// range are never handed out that way.
package testnet

import (
	"fmt"
	"math/rand/v2"
	"net"
	"testing"
)

// Below Linux's default ephemeral range (32768–60999) and above the ports
// services commonly use.
const lowPort, highPort = 20000, 32768

// RestartableAddr returns a loopback address, outside the ephemeral port
// range, that was free a moment ago.
func RestartableAddr(t testing.TB) string {
	t.Helper()
	for range 1000 {
		addr := fmt.Sprintf("127.0.0.1:%d", lowPort+rand.IntN(highPort-lowPort))
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			continue
		}
		ln.Close()
		return addr
	}
	t.Fatal("testnet: no free loopback port below the ephemeral range")
	return ""
}
