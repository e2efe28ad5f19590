package inventory

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strconv"
	"strings"
)

// Socket states in /proc/net/{tcp,udp}*: TCP_LISTEN, and TCP_CLOSE, the
// state of a UDP socket that is bound but not connected.
const (
	stateListen = 0x0A
	stateClose  = 0x07
)

// procSocket is one line of a /proc/net table that the inventory keeps.
type procSocket struct {
	Addr  netip.Addr
	Port  int
	Inode uint64
}

// listening lists the listening TCP and bound unconnected UDP sockets of
// <root>/proc/net and the processes holding them.
func listening(o Options) []Socket {
	var socks []Socket
	var inodes []uint64
	for _, proto := range []string{"tcp", "tcp6", "udp", "udp6"} {
		f, err := os.Open(o.path("proc/net", proto))
		if err != nil {
			continue
		}
		ps, err := parseProcNet(f, strings.HasPrefix(proto, "udp"))
		f.Close()
		if err != nil {
			continue
		}
		for _, p := range ps {
			socks = append(socks, Socket{Proto: proto, Address: p.Addr.String(), Port: p.Port})
			inodes = append(inodes, p.Inode)
		}
	}
	owners := socketOwners(o, inodes)
	out := make([]Socket, 0, len(socks))
	seen := map[Socket]bool{}
	for i, s := range socks {
		if ow, ok := owners[inodes[i]]; ok {
			s.PID, s.Process = ow.pid, ow.comm
		}
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// parseProcNet reads a /proc/net/{tcp,tcp6,udp,udp6} table and returns
// its listening sockets (TCP, state LISTEN) or its bound unconnected
// sockets (UDP: state CLOSE with no remote address). Addresses are the
// kernel's 32-bit words printed in hex in the host's byte order, so the
// table must come from a host of this byte order.
func parseProcNet(r io.Reader, udp bool) ([]procSocket, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 64<<10)
	var out []procSocket
	line := 0
	for sc.Scan() {
		line++
		if line == 1 { // header
			continue
		}
		f := bytes.Fields(sc.Bytes())
		if len(f) == 0 {
			continue
		}
		if len(f) < 10 {
			return nil, fmt.Errorf("proc/net line %d: %d fields", line, len(f))
		}
		st, err := strconv.ParseUint(string(f[3]), 16, 8)
		if err != nil {
			return nil, fmt.Errorf("proc/net line %d: state: %w", line, err)
		}
		local, err := parseHexAddrPort(string(f[1]))
		if err != nil {
			return nil, fmt.Errorf("proc/net line %d: local address: %w", line, err)
		}
		remote, err := parseHexAddrPort(string(f[2]))
		if err != nil {
			return nil, fmt.Errorf("proc/net line %d: remote address: %w", line, err)
		}
		inode, err := strconv.ParseUint(string(f[9]), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("proc/net line %d: inode: %w", line, err)
		}
		if udp {
			if st != stateClose || !remote.Addr().IsUnspecified() || remote.Port() != 0 {
				continue
			}
		} else if st != stateListen {
			continue
		}
		out = append(out, procSocket{Addr: local.Addr(), Port: int(local.Port()), Inode: inode})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("proc/net line %d: %w", line+1, err)
	}
	return out, nil
}

// parseHexAddrPort reads "0100007F:0035" (IPv4) or 32 hex digits and a
// port (IPv6).
func parseHexAddrPort(s string) (netip.AddrPort, error) {
	h, p, ok := strings.Cut(s, ":")
	if !ok || len(p) != 4 {
		return netip.AddrPort{}, errors.New("not ADDR:PORT in hex")
	}
	port, err := strconv.ParseUint(p, 16, 16)
	if err != nil {
		return netip.AddrPort{}, err
	}
	raw, err := hex.DecodeString(h)
	if err != nil {
		return netip.AddrPort{}, err
	}
	var addr netip.Addr
	switch len(raw) {
	case 4:
		addr = netip.AddrFrom4([4]byte(hostWord(raw)))
	case 16:
		var b [16]byte
		for i := 0; i < 16; i += 4 {
			copy(b[i:], hostWord(raw[i:i+4]))
		}
		addr = netip.AddrFrom16(b)
	default:
		return netip.AddrPort{}, errors.New("address is neither 4 nor 16 bytes")
	}
	return netip.AddrPortFrom(addr, uint16(port)), nil
}

// hostWord turns the printed form of a 32-bit word (most significant
// digit first) back into the bytes the kernel held in memory: the address
// bytes in network order.
func hostWord(printed []byte) []byte {
	w := binary.BigEndian.Uint32(printed)
	var b [4]byte
	binary.NativeEndian.PutUint32(b[:], w)
	return b[:]
}

type owner struct {
	pid  int
	comm string
}

// socketOwners maps socket inodes to the process with the lowest PID that
// holds them, through the <root>/proc/<pid>/fd symlinks "socket:[inode]".
// Processes whose descriptors cannot be read are skipped.
func socketOwners(o Options, inodes []uint64) map[uint64]owner {
	want := map[uint64]bool{}
	for _, in := range inodes {
		if in != 0 {
			want[in] = true
		}
	}
	out := map[uint64]owner{}
	if len(want) == 0 {
		return out
	}
	procs, err := os.ReadDir(o.path("proc"))
	if err != nil {
		return out
	}
	for _, e := range procs {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid <= 0 {
			continue
		}
		fdDir := o.path("proc", e.Name(), "fd")
		fds, err := os.ReadDir(fdDir)
		if err != nil {
			continue
		}
		var comm string
		for _, fd := range fds {
			link, err := os.Readlink(fdDir + "/" + fd.Name())
			if err != nil || !strings.HasPrefix(link, "socket:[") || !strings.HasSuffix(link, "]") {
				continue
			}
			in, err := strconv.ParseUint(link[len("socket:["):len(link)-1], 10, 64)
			if err != nil || !want[in] {
				continue
			}
			if cur, ok := out[in]; ok && cur.pid < pid {
				continue
			}
			if comm == "" {
				comm = readTrimmed(o.path("proc", e.Name(), "comm"))
			}
			out[in] = owner{pid: pid, comm: comm}
		}
	}
	return out
}
