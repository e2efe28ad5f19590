// Package inventory describes a host as its agent reports it to the
// servers: operating system, kernel, installed packages with their install
// times, the updates the package manager knows are pending, the host's
// addresses and its listening sockets with their processes.
//
// Everything is read under a root directory (Options.Root), so tests and
// fixtures stand in for a real host. Only with Root "/" does Collect look
// at the live host beyond files: the network interfaces, the hostname
// system call and the rpm command. The package reads; it never changes the
// host, never runs a package manager that would refresh or lock its
// database, and never contacts the network.
//
// Validate is the servers' side: the bounds an inventory must satisfy
// before it is stored.
package inventory

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"
	"unicode/utf8"
)

// Inventory is one host's description at CollectedAt. Its slices are
// sorted, so two collections of an unchanged host have the same
// Fingerprint.
type Inventory struct {
	CollectedAt    time.Time `json:"collected_at"`
	Hostname       string    `json:"hostname"`
	OS             OS        `json:"os"`
	Kernel         string    `json:"kernel"`
	Arch           string    `json:"arch"`
	AgentVersion   string    `json:"agent_version"`
	Addresses      []string  `json:"addresses"`
	PackageManager string    `json:"package_manager"` // "dpkg" | "rpm" | "apk" | ""
	Packages       []Package `json:"packages"`
	// PendingKnown says the package manager could tell which updates are
	// pending (dpkg with readable apt lists); Pending is meaningful only
	// when it is true.
	PendingKnown bool     `json:"pending_known"`
	Pending      []Update `json:"pending_updates,omitempty"`
	Listening    []Socket `json:"listening"`
	// Enforcement is how the agent enforces the cluster's decisions on
	// this host: "nftables", or "none" (set by the agent, not collected).
	Enforcement string `json:"enforcement,omitempty"`
}

// OS is what <root>/etc/os-release says.
type OS struct {
	ID         string `json:"id"`
	Name       string `json:"name"`
	Version    string `json:"version"`
	VersionID  string `json:"version_id"`
	PrettyName string `json:"pretty_name"`
}

// Package is one installed package. InstalledAt is zero when the package
// manager does not record it (apk).
type Package struct {
	Name        string    `json:"name"`
	Version     string    `json:"version"`
	Arch        string    `json:"arch"`
	InstalledAt time.Time `json:"installed_at,omitzero"`
}

// Update is a newer version of an installed package that the package
// manager's lists offer. Since is when the package manager learned of it,
// as best known: the earliest modification time of the apt list files
// that offer a newer version.
type Update struct {
	Name      string    `json:"name"`
	Installed string    `json:"installed"`
	Available string    `json:"available"`
	Since     time.Time `json:"since,omitzero"`
}

// Socket is a listening TCP socket or a bound, unconnected UDP socket.
// PID and Process are empty when the owning process could not be found
// (another user's process while the agent is not root).
type Socket struct {
	Proto   string `json:"proto"` // tcp, tcp6, udp, udp6
	Address string `json:"address"`
	Port    int    `json:"port"`
	PID     int    `json:"pid,omitempty"`
	Process string `json:"process,omitempty"`
}

// String is the socket as Diff lists it: "tcp 0.0.0.0:22 sshd".
func (s Socket) String() string {
	out := s.Proto + " " + netip.AddrPortFrom(netip.MustParseAddr(orUnspecified(s.Address)), uint16(s.Port)).String()
	if s.Process != "" {
		out += " " + s.Process
	}
	return out
}

func orUnspecified(a string) string {
	if _, err := netip.ParseAddr(a); err != nil {
		return "0.0.0.0"
	}
	return a
}

// Options configure Collect. The zero value of Now is time.Now; an empty
// Root is "/".
type Options struct {
	Root         string
	AgentVersion string
	Now          func() time.Time
}

func (o Options) live() bool { return filepath.Clean(o.Root) == "/" }

func (o Options) path(p ...string) string {
	return filepath.Join(append([]string{o.Root}, p...)...)
}

// Collect describes the host under o.Root. A part that cannot be read is
// left empty rather than failing the whole collection (a host without
// os-release still has packages); Collect fails only when ctx is done.
// It is safe to call concurrently.
func Collect(ctx context.Context, o Options) (*Inventory, error) {
	if o.Root == "" {
		o.Root = "/"
	}
	now := time.Now
	if o.Now != nil {
		now = o.Now
	}
	inv := &Inventory{
		CollectedAt:  now().UTC(),
		Arch:         runtime.GOARCH,
		AgentVersion: o.AgentVersion,
		Addresses:    []string{},
		Packages:     []Package{},
		Listening:    []Socket{},
	}
	inv.OS = readOSRelease(o)
	inv.Kernel = readTrimmed(o.path("proc/sys/kernel/osrelease"))
	if o.live() {
		inv.Hostname, _ = os.Hostname()
		inv.Addresses = hostAddresses()
	} else {
		inv.Hostname = readTrimmed(o.path("etc/hostname"))
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := collectPackages(ctx, o, inv); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	inv.Listening = listening(o)
	sortInventory(inv)
	return inv, nil
}

func sortInventory(inv *Inventory) {
	sort.Strings(inv.Addresses)
	sort.Slice(inv.Packages, func(i, j int) bool {
		a, b := inv.Packages[i], inv.Packages[j]
		if a.Name != b.Name {
			return a.Name < b.Name
		}
		return a.Arch < b.Arch
	})
	sort.Slice(inv.Pending, func(i, j int) bool { return inv.Pending[i].Name < inv.Pending[j].Name })
	sort.Slice(inv.Listening, func(i, j int) bool { return socketLess(inv.Listening[i], inv.Listening[j]) })
}

func socketLess(a, b Socket) bool {
	if a.Proto != b.Proto {
		return a.Proto < b.Proto
	}
	if a.Address != b.Address {
		return a.Address < b.Address
	}
	if a.Port != b.Port {
		return a.Port < b.Port
	}
	if a.PID != b.PID {
		return a.PID < b.PID
	}
	return a.Process < b.Process
}

func readTrimmed(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// hostAddresses lists the global unicast addresses of the host's
// interfaces (private ranges included; loopback and link-local not).
func hostAddresses() []string {
	out := []string{}
	ifs, err := net.Interfaces()
	if err != nil {
		return out
	}
	seen := map[string]bool{}
	for _, ifc := range ifs {
		addrs, err := ifc.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			ipn, ok := a.(*net.IPNet)
			if !ok || !ipn.IP.IsGlobalUnicast() {
				continue
			}
			s := ipn.IP.String()
			if !seen[s] {
				seen[s] = true
				out = append(out, s)
			}
		}
	}
	sort.Strings(out)
	return out
}

// readOSRelease reads <root>/etc/os-release, falling back to
// <root>/usr/lib/os-release as os-release(5) says.
func readOSRelease(o Options) OS {
	data, err := os.ReadFile(o.path("etc/os-release"))
	if err != nil {
		data, err = os.ReadFile(o.path("usr/lib/os-release"))
		if err != nil {
			return OS{}
		}
	}
	kv := parseOSRelease(data)
	return OS{ID: kv["ID"], Name: kv["NAME"], Version: kv["VERSION"], VersionID: kv["VERSION_ID"], PrettyName: kv["PRETTY_NAME"]}
}

// parseOSRelease reads KEY=value lines with shell-style quoting; lines
// it does not understand are skipped.
func parseOSRelease(data []byte) map[string]string {
	kv := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || k == "" {
			continue
		}
		kv[k] = unquoteShell(v)
	}
	return kv
}

func unquoteShell(v string) string {
	if len(v) >= 2 && v[0] == '\'' && v[len(v)-1] == '\'' {
		return v[1 : len(v)-1]
	}
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		v = v[1 : len(v)-1]
		var b strings.Builder
		for i := 0; i < len(v); i++ {
			if v[i] == '\\' && i+1 < len(v) && strings.IndexByte("\"\\`$", v[i+1]) >= 0 {
				i++
			}
			b.WriteByte(v[i])
		}
		return b.String()
	}
	return v
}

// Fingerprint is the hex SHA-256 of the inventory's JSON without
// CollectedAt: two collections of an unchanged host have the same one.
func (inv *Inventory) Fingerprint() string {
	c := *inv
	c.CollectedAt = time.Time{}
	// Loopback listeners come and go (test servers, language servers,
	// debuggers on ephemeral ports) and are reachable from the host only:
	// they are reported, but a change of them alone is not a change.
	c.Listening = nil
	for _, l := range inv.Listening {
		if ip := net.ParseIP(l.Address); ip == nil || !ip.IsLoopback() {
			c.Listening = append(c.Listening, l)
		}
	}
	b, err := json.Marshal(&c)
	if err != nil { // cannot happen: plain data
		panic(err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// Patch-age bases.
const (
	BasisPending   = "pending_updates"
	BasisInstalled = "installed_versions"
	BasisUnknown   = "unknown"
)

// PatchAge is how far behind a host is, in whole days at now, and what
// the figure is based on:
//
//   - BasisPending when the package manager knows the pending updates: the
//     days since the oldest pending update's Since (0 when nothing is
//     pending: the host has everything its lists offer);
//   - BasisInstalled otherwise (rpm, apk, dpkg without apt lists, or
//     pending updates without a known Since): the days since the oldest
//     InstalledAt, a weaker figure that grows with the host's age;
//   - BasisUnknown with 0 days when neither is known.
func PatchAge(inv *Inventory, now time.Time) (days int, basis string) {
	if inv == nil {
		return 0, BasisUnknown
	}
	if inv.PendingKnown {
		if len(inv.Pending) == 0 {
			return 0, BasisPending
		}
		var oldest time.Time
		for _, u := range inv.Pending {
			if !u.Since.IsZero() && (oldest.IsZero() || u.Since.Before(oldest)) {
				oldest = u.Since
			}
		}
		if !oldest.IsZero() {
			return daysSince(oldest, now), BasisPending
		}
	}
	var oldest time.Time
	for _, p := range inv.Packages {
		if !p.InstalledAt.IsZero() && (oldest.IsZero() || p.InstalledAt.Before(oldest)) {
			oldest = p.InstalledAt
		}
	}
	if oldest.IsZero() {
		return 0, BasisUnknown
	}
	return daysSince(oldest, now), BasisInstalled
}

func daysSince(t, now time.Time) int {
	d := now.Sub(t)
	if d < 0 {
		return 0
	}
	return int(d / (24 * time.Hour))
}

// Change is what differs between two inventories of one host. Every list
// is sorted; a string field is "old -> new" when it changed, else "".
type Change struct {
	Added            []string `json:"added,omitempty"`    // "name version"
	Removed          []string `json:"removed,omitempty"`  // "name version"
	Upgraded         []string `json:"upgraded,omitempty"` // "name old -> new" (any version change)
	OS               string   `json:"os,omitempty"`
	Kernel           string   `json:"kernel,omitempty"`
	Agent            string   `json:"agent,omitempty"`
	ListeningAdded   []string `json:"listening_added,omitempty"` // "tcp 0.0.0.0:22 sshd"
	ListeningRemoved []string `json:"listening_removed,omitempty"`
}

// Empty says nothing changed.
func (c Change) Empty() bool {
	return len(c.Added)+len(c.Removed)+len(c.Upgraded)+len(c.ListeningAdded)+len(c.ListeningRemoved) == 0 &&
		c.OS == "" && c.Kernel == "" && c.Agent == ""
}

// Diff lists what changed from old to cur; a nil old is an empty host.
// Packages are matched by name and architecture; the architecture is
// shown ("name:arch") only for names installed for several.
func Diff(old, cur *Inventory) Change {
	if old == nil {
		old = &Inventory{}
	}
	if cur == nil {
		cur = &Inventory{}
	}
	var c Change
	arches := map[string]map[string]bool{}
	index := func(ps []Package) map[[2]string]string {
		m := make(map[[2]string]string, len(ps))
		for _, p := range ps {
			m[[2]string{p.Name, p.Arch}] = p.Version
			if arches[p.Name] == nil {
				arches[p.Name] = map[string]bool{}
			}
			arches[p.Name][p.Arch] = true
		}
		return m
	}
	om, cm := index(old.Packages), index(cur.Packages)
	label := func(k [2]string) string {
		if len(arches[k[0]]) > 1 {
			return k[0] + ":" + k[1]
		}
		return k[0]
	}
	for k, v := range cm {
		ov, ok := om[k]
		switch {
		case !ok:
			c.Added = append(c.Added, label(k)+" "+v)
		case ov != v:
			c.Upgraded = append(c.Upgraded, label(k)+" "+ov+" -> "+v)
		}
	}
	for k, v := range om {
		if _, ok := cm[k]; !ok {
			c.Removed = append(c.Removed, label(k)+" "+v)
		}
	}
	if o, n := osString(old.OS), osString(cur.OS); o != n {
		c.OS = o + " -> " + n
	}
	if old.Kernel != cur.Kernel {
		c.Kernel = old.Kernel + " -> " + cur.Kernel
	}
	if old.AgentVersion != cur.AgentVersion {
		c.Agent = old.AgentVersion + " -> " + cur.AgentVersion
	}
	was, cs := map[string]bool{}, map[string]bool{}
	for _, s := range old.Listening {
		was[s.String()] = true
	}
	for _, s := range cur.Listening {
		cs[s.String()] = true
	}
	for s := range cs {
		if !was[s] {
			c.ListeningAdded = append(c.ListeningAdded, s)
		}
	}
	for s := range was {
		if !cs[s] {
			c.ListeningRemoved = append(c.ListeningRemoved, s)
		}
	}
	for _, l := range [][]string{c.Added, c.Removed, c.Upgraded, c.ListeningAdded, c.ListeningRemoved} {
		sort.Strings(l)
	}
	return c
}

func osString(o OS) string {
	if o.PrettyName != "" {
		return o.PrettyName
	}
	return strings.TrimSpace(o.ID + " " + o.VersionID)
}

// Bounds Validate enforces.
const (
	MaxPackages  = 20000
	MaxSockets   = 4096
	MaxAddresses = 1024
	MaxString    = 256
)

// ErrInvalid is wrapped by every error Validate returns.
var ErrInvalid = errors.New("invalid inventory")

// Validate checks an inventory a node sent before the servers store it:
// the bounds above, strings of valid UTF-8 without control characters,
// addresses that parse, known protocols and package managers, ports in
// range. The error names the field and index ("packages[12].name: ...")
// and wraps ErrInvalid.
func Validate(inv *Inventory) error {
	if inv == nil {
		return fmt.Errorf("%w: empty", ErrInvalid)
	}
	bad := func(field, why string, args ...any) error {
		return fmt.Errorf("%w: %s: %s", ErrInvalid, field, fmt.Sprintf(why, args...))
	}
	if inv.CollectedAt.IsZero() {
		return bad("collected_at", "missing")
	}
	switch inv.Enforcement {
	case "", "nftables", "none":
	default:
		return bad("enforcement", "%q: want nftables or none", inv.Enforcement)
	}
	for _, f := range []struct{ name, v string }{
		{"hostname", inv.Hostname}, {"os.id", inv.OS.ID}, {"os.name", inv.OS.Name},
		{"os.version", inv.OS.Version}, {"os.version_id", inv.OS.VersionID},
		{"os.pretty_name", inv.OS.PrettyName}, {"kernel", inv.Kernel}, {"arch", inv.Arch},
		{"agent_version", inv.AgentVersion},
	} {
		if err := checkString(f.v); err != nil {
			return bad(f.name, "%v", err)
		}
	}
	switch inv.PackageManager {
	case "", "dpkg", "rpm", "apk":
	default:
		return bad("package_manager", "%q is not dpkg, rpm, apk or empty", inv.PackageManager)
	}
	if len(inv.Addresses) > MaxAddresses {
		return bad("addresses", "%d entries; at most %d", len(inv.Addresses), MaxAddresses)
	}
	for i, a := range inv.Addresses {
		if _, err := netip.ParseAddr(a); err != nil {
			return bad(fmt.Sprintf("addresses[%d]", i), "not an IP address")
		}
	}
	if len(inv.Packages) > MaxPackages {
		return bad("packages", "%d entries; at most %d", len(inv.Packages), MaxPackages)
	}
	for i, p := range inv.Packages {
		if p.Name == "" {
			return bad(fmt.Sprintf("packages[%d].name", i), "empty")
		}
		for _, f := range []struct{ name, v string }{{"name", p.Name}, {"version", p.Version}, {"arch", p.Arch}} {
			if err := checkString(f.v); err != nil {
				return bad(fmt.Sprintf("packages[%d].%s", i, f.name), "%v", err)
			}
		}
	}
	if len(inv.Pending) > MaxPackages {
		return bad("pending_updates", "%d entries; at most %d", len(inv.Pending), MaxPackages)
	}
	for i, u := range inv.Pending {
		if u.Name == "" {
			return bad(fmt.Sprintf("pending_updates[%d].name", i), "empty")
		}
		for _, f := range []struct{ name, v string }{{"name", u.Name}, {"installed", u.Installed}, {"available", u.Available}} {
			if err := checkString(f.v); err != nil {
				return bad(fmt.Sprintf("pending_updates[%d].%s", i, f.name), "%v", err)
			}
		}
	}
	if len(inv.Listening) > MaxSockets {
		return bad("listening", "%d entries; at most %d", len(inv.Listening), MaxSockets)
	}
	for i, s := range inv.Listening {
		field := func(f string) string { return fmt.Sprintf("listening[%d].%s", i, f) }
		switch s.Proto {
		case "tcp", "tcp6", "udp", "udp6":
		default:
			return bad(field("proto"), "%q is not tcp, tcp6, udp or udp6", s.Proto)
		}
		if _, err := netip.ParseAddr(s.Address); err != nil {
			return bad(field("address"), "not an IP address")
		}
		if s.Port < 0 || s.Port > 65535 {
			return bad(field("port"), "%d is out of range", s.Port)
		}
		if s.PID < 0 {
			return bad(field("pid"), "negative")
		}
		if err := checkString(s.Process); err != nil {
			return bad(field("process"), "%v", err)
		}
	}
	return nil
}

func checkString(s string) error {
	if len(s) > MaxString {
		return fmt.Errorf("%d bytes; at most %d", len(s), MaxString)
	}
	if !utf8.ValidString(s) {
		return errors.New("not valid UTF-8")
	}
	for i, r := range s {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return fmt.Errorf("control character at byte %d", i)
		}
	}
	return nil
}
