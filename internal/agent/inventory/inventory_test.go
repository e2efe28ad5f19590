package inventory

import (
	"context"
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

// fixture copies testdata/<name> into a temporary root, so tests can set
// modification times and create what git cannot hold (symlinks to
// "socket:[N]", file names with colons).
func fixture(t *testing.T, name string) string {
	t.Helper()
	root := t.TempDir()
	src := filepath.Join("testdata", name)
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		dst := filepath.Join(root, rel)
		if d.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return root
}

func touch(t *testing.T, path string, mtime time.Time) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err != nil {
		if err := os.WriteFile(path, []byte("/usr\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chtimes(path, mtime, mtime); err != nil {
		t.Fatal(err)
	}
}

func process(t *testing.T, root string, pid int, comm string, links ...string) {
	t.Helper()
	dir := filepath.Join(root, "proc", strconv.Itoa(pid))
	if err := os.MkdirAll(filepath.Join(dir, "fd"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "comm"), []byte(comm+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for i, l := range links {
		if err := os.Symlink(l, filepath.Join(dir, "fd", strconv.Itoa(i+3))); err != nil {
			t.Fatal(err)
		}
	}
}

// day0() is the fixtures' reference time.
func day0() time.Time { return time.Date(2024, 1, 10, 12, 0, 0, 0, time.UTC) }

func debianRoot(t *testing.T) string {
	t.Helper()
	root := fixture(t, "debian")
	info := filepath.Join(root, "var/lib/dpkg/info")
	touch(t, filepath.Join(info, "openssh-server.list"), day0())
	touch(t, filepath.Join(info, "libc6:amd64.list"), day0().Add(-48*time.Hour))
	touch(t, filepath.Join(info, "held-pkg.list"), day0().Add(time.Hour))
	// tzdata has no list file: its install time is unknown.
	lists := filepath.Join(root, "var/lib/apt/lists")
	touch(t, filepath.Join(lists, "deb_dists_bookworm_main_binary-amd64_Packages"), day0().Add(24*time.Hour))
	touch(t, filepath.Join(lists, "security_dists_bookworm-security_main_binary-amd64_Packages.lz4"), day0().Add(72*time.Hour))
	touch(t, filepath.Join(lists, "deb_dists_bookworm-updates_main_binary-amd64_Packages.gz"), day0().Add(96*time.Hour))
	process(t, root, 100, "sshd", "socket:[1001]", "socket:[1004]", "/dev/null")
	process(t, root, 200, "sshd", "socket:[1001]")
	process(t, root, 300, "dhclient", "socket:[1006]")
	process(t, root, 400, "cat", "pipe:[77]")
	return root
}

func TestCollectDebianFixture(t *testing.T) {
	root := debianRoot(t)
	now := day0().Add(10 * 24 * time.Hour)
	inv, err := Collect(context.Background(), Options{Root: root, AgentVersion: "1.2.3", Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	want := &Inventory{
		CollectedAt:    now,
		Hostname:       "fixture-deb",
		OS:             OS{ID: "debian", Name: "Debian GNU/Linux", Version: "12 (bookworm)", VersionID: "12", PrettyName: "Debian GNU/Linux 12 (bookworm)"},
		Kernel:         "6.1.0-18-amd64",
		Arch:           inv.Arch,
		AgentVersion:   "1.2.3",
		Addresses:      []string{}, // not the live host: no interfaces
		PackageManager: "dpkg",
		Packages: []Package{
			{Name: "held-pkg", Version: "2.0~rc1-1", Arch: "all", InstalledAt: day0().Add(time.Hour)},
			{Name: "libc6", Version: "2.36-9+deb12u4", Arch: "amd64", InstalledAt: day0().Add(-48 * time.Hour)},
			{Name: "openssh-server", Version: "1:9.2p1-2+deb12u2", Arch: "amd64", InstalledAt: day0()},
			{Name: "tzdata", Version: "2024a-0+deb12u1", Arch: "all"},
		},
		PendingKnown: true,
		Pending: []Update{
			// Only the updates list (gzip) has a newer held-pkg.
			{Name: "held-pkg", Installed: "2.0~rc1-1", Available: "2.0-1", Since: day0().Add(96 * time.Hour)},
			// Both lists offer newer versions: the best is the security
			// one, Since is the earlier list (the main one).
			{Name: "openssh-server", Installed: "1:9.2p1-2+deb12u2", Available: "1:9.2p1-2+deb12u5", Since: day0().Add(24 * time.Hour)},
			{Name: "tzdata", Installed: "2024a-0+deb12u1", Available: "2025b-0+deb12u1", Since: day0().Add(72 * time.Hour)},
			// libc6: the newer version is for i386 only, not installed.
		},
		Listening: []Socket{
			{Proto: "tcp", Address: "0.0.0.0", Port: 22, PID: 100, Process: "sshd"},
			{Proto: "tcp", Address: "127.0.0.1", Port: 631},
			{Proto: "tcp6", Address: "::", Port: 22, PID: 100, Process: "sshd"},
			{Proto: "tcp6", Address: "::1", Port: 8080},
			{Proto: "udp", Address: "0.0.0.0", Port: 68, PID: 300, Process: "dhclient"},
			{Proto: "udp6", Address: "::", Port: 5353},
		},
	}
	if !reflect.DeepEqual(inv, want) {
		t.Errorf("Collect:\n got %+v\nwant %+v", inv, want)
	}
	if err := Validate(inv); err != nil {
		t.Errorf("Validate(collected): %v", err)
	}
	days, basis := PatchAge(inv, now)
	if days != 9 || basis != BasisPending {
		t.Errorf("PatchAge = %d %s, want 9 days since the oldest pending update (day 1)", days, basis)
	}
}

func TestCollectWithoutAptLists(t *testing.T) {
	root := debianRoot(t)
	if err := os.RemoveAll(filepath.Join(root, "var/lib/apt")); err != nil {
		t.Fatal(err)
	}
	inv, err := Collect(context.Background(), Options{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	if inv.PendingKnown || len(inv.Pending) != 0 {
		t.Errorf("pending known %v %v without lists", inv.PendingKnown, inv.Pending)
	}
	now := day0().Add(10 * 24 * time.Hour)
	if days, basis := PatchAge(inv, now); days != 12 || basis != BasisInstalled {
		t.Errorf("PatchAge = %d %s, want 12 days since libc6 was installed", days, basis)
	}
}

func TestCollectAlpineFixture(t *testing.T) {
	root := fixture(t, "alpine")
	inv, err := Collect(context.Background(), Options{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	if inv.PackageManager != "apk" || inv.PendingKnown {
		t.Errorf("package manager %q pending known %v", inv.PackageManager, inv.PendingKnown)
	}
	want := []Package{
		{Name: "busybox", Version: "1.36.1-r15", Arch: "x86_64"},
		{Name: "musl", Version: "1.2.4-r2", Arch: "x86_64"},
	}
	if !reflect.DeepEqual(inv.Packages, want) {
		t.Errorf("packages %+v, want %+v", inv.Packages, want)
	}
	if inv.OS.PrettyName != "Alpine Linux v3.19" || inv.OS.VersionID != "3.19.1" {
		t.Errorf("os %+v", inv.OS)
	}
	if len(inv.Listening) != 0 || inv.Kernel != "" {
		t.Errorf("no /proc in the fixture, yet listening %v kernel %q", inv.Listening, inv.Kernel)
	}
	if days, basis := PatchAge(inv, day0()); days != 0 || basis != BasisUnknown {
		t.Errorf("PatchAge = %d %s, want unknown (apk records no install time)", days, basis)
	}
}

func TestCollectEmptyRoot(t *testing.T) {
	inv, err := Collect(context.Background(), Options{Root: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if inv.PackageManager != "" || len(inv.Packages) != 0 || inv.Packages == nil {
		t.Errorf("empty root: %+v", inv)
	}
	if err := Validate(inv); err != nil {
		t.Error(err)
	}
}

func TestCollectCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Collect(ctx, Options{Root: debianRoot(t)}); !errors.Is(err, context.Canceled) {
		t.Errorf("err %v, want context.Canceled", err)
	}
}

// TestCollectLiveHost runs on this machine, a Debian host: real packages,
// and a socket this test listens on, found with this process's PID.
func TestCollectLiveHost(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	inv, err := Collect(context.Background(), Options{Root: "/", AgentVersion: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if inv.PackageManager != "dpkg" {
		t.Fatalf("package manager %q on a Debian host", inv.PackageManager)
	}
	var dpkg *Package
	for i := range inv.Packages {
		if inv.Packages[i].Name == "dpkg" {
			dpkg = &inv.Packages[i]
		}
	}
	if dpkg == nil || dpkg.Version == "" || dpkg.InstalledAt.IsZero() {
		t.Fatalf("dpkg package: %+v", dpkg)
	}
	if inv.OS.ID == "" || inv.Kernel == "" || inv.Hostname == "" {
		t.Errorf("os %+v kernel %q hostname %q", inv.OS, inv.Kernel, inv.Hostname)
	}
	found := false
	for _, s := range inv.Listening {
		if s.Proto == "tcp" && s.Address == "127.0.0.1" && s.Port == port {
			found = true
			if s.PID != os.Getpid() {
				t.Errorf("socket %+v: pid, want %d", s, os.Getpid())
			}
		}
	}
	if !found {
		t.Errorf("127.0.0.1:%d not among %v", port, inv.Listening)
	}
	if err := Validate(inv); err != nil {
		t.Errorf("Validate(live): %v", err)
	}
	if _, basis := PatchAge(inv, time.Now()); basis == BasisUnknown {
		t.Errorf("patch age basis unknown on a dpkg host")
	}
}

func BenchmarkCollect(b *testing.B) {
	for b.Loop() {
		if _, err := Collect(context.Background(), Options{Root: "/"}); err != nil {
			b.Fatal(err)
		}
	}
}

func TestFingerprint(t *testing.T) {
	root := debianRoot(t)
	a, err := Collect(context.Background(), Options{Root: root, Now: func() time.Time { return day0() }})
	if err != nil {
		t.Fatal(err)
	}
	b, err := Collect(context.Background(), Options{Root: root, Now: func() time.Time { return day0().Add(time.Hour) }})
	if err != nil {
		t.Fatal(err)
	}
	if a.Fingerprint() != b.Fingerprint() || len(a.Fingerprint()) != 64 {
		t.Errorf("fingerprints differ for an unchanged host: %s %s", a.Fingerprint(), b.Fingerprint())
	}
	// A loopback listener that comes or goes is not a change; one on
	// another address is.
	b.Listening = append(b.Listening, Socket{Proto: "tcp", Address: "127.0.0.1", Port: 43055, Process: "test"},
		Socket{Proto: "tcp6", Address: "::1", Port: 43056})
	if a.Fingerprint() != b.Fingerprint() {
		t.Error("a loopback listener changed the fingerprint")
	}
	b.Listening = append(b.Listening, Socket{Proto: "tcp", Address: "0.0.0.0", Port: 8080})
	if a.Fingerprint() == b.Fingerprint() {
		t.Error("fingerprint unchanged after a listener on every address")
	}
	b.Listening = a.Listening
	b.Kernel = "6.1.0-19-amd64"
	if a.Fingerprint() == b.Fingerprint() {
		t.Error("fingerprint unchanged after the kernel changed")
	}
}

func TestPatchAge(t *testing.T) {
	now := day0().Add(30 * 24 * time.Hour)
	for _, tc := range []struct {
		name  string
		inv   *Inventory
		days  int
		basis string
	}{
		{"nil", nil, 0, BasisUnknown},
		{"nothing known", &Inventory{Packages: []Package{{Name: "a"}}}, 0, BasisUnknown},
		{"pending: oldest since", &Inventory{PendingKnown: true, Pending: []Update{
			{Name: "a", Since: day0().Add(20 * 24 * time.Hour)}, {Name: "b", Since: day0()}, {Name: "c"},
		}, Packages: []Package{{Name: "a", InstalledAt: day0().Add(-100 * 24 * time.Hour)}}}, 30, BasisPending},
		{"pending known, none pending", &Inventory{PendingKnown: true, Packages: []Package{{Name: "a", InstalledAt: day0()}}}, 0, BasisPending},
		{"pending without since falls back", &Inventory{PendingKnown: true, Pending: []Update{{Name: "a"}},
			Packages: []Package{{Name: "a", InstalledAt: day0().Add(10 * 24 * time.Hour)}, {Name: "b", InstalledAt: day0().Add(-12 * time.Hour)}}}, 30, BasisInstalled},
		{"installed: oldest", &Inventory{Packages: []Package{{Name: "a", InstalledAt: day0().Add(29 * 24 * time.Hour)}, {Name: "b"}}}, 1, BasisInstalled},
		{"future is zero", &Inventory{Packages: []Package{{Name: "a", InstalledAt: now.Add(time.Hour)}}}, 0, BasisInstalled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			days, basis := PatchAge(tc.inv, now)
			if days != tc.days || basis != tc.basis {
				t.Errorf("PatchAge = %d %s, want %d %s", days, basis, tc.days, tc.basis)
			}
		})
	}
}

func TestDiff(t *testing.T) {
	old := &Inventory{
		OS:           OS{PrettyName: "Debian GNU/Linux 11 (bullseye)"},
		Kernel:       "5.10.0-1",
		AgentVersion: "1.0.0",
		Packages: []Package{
			{Name: "bash", Version: "5.1-2", Arch: "amd64"},
			{Name: "libc6", Version: "2.31-13", Arch: "amd64"},
			{Name: "libc6", Version: "2.31-13", Arch: "i386"},
			{Name: "telnetd", Version: "0.17-42", Arch: "amd64"},
		},
		Listening: []Socket{{Proto: "tcp", Address: "0.0.0.0", Port: 23, PID: 5, Process: "inetd"}, {Proto: "tcp", Address: "0.0.0.0", Port: 22, PID: 9, Process: "sshd"}},
	}
	cur := &Inventory{
		OS:           OS{PrettyName: "Debian GNU/Linux 12 (bookworm)"},
		Kernel:       "6.1.0-1",
		AgentVersion: "1.0.0",
		Packages: []Package{
			{Name: "bash", Version: "5.2.15-2", Arch: "amd64"},
			{Name: "libc6", Version: "2.36-9", Arch: "amd64"},
			{Name: "libc6", Version: "2.31-13", Arch: "i386"},
			{Name: "nginx", Version: "1.22.1-9", Arch: "amd64"},
		},
		Listening: []Socket{{Proto: "tcp", Address: "0.0.0.0", Port: 22, PID: 9, Process: "sshd"}, {Proto: "tcp6", Address: "::", Port: 443, Process: "nginx"}},
	}
	want := Change{
		Added:            []string{"nginx 1.22.1-9"},
		Removed:          []string{"telnetd 0.17-42"},
		Upgraded:         []string{"bash 5.1-2 -> 5.2.15-2", "libc6:amd64 2.31-13 -> 2.36-9"},
		OS:               "Debian GNU/Linux 11 (bullseye) -> Debian GNU/Linux 12 (bookworm)",
		Kernel:           "5.10.0-1 -> 6.1.0-1",
		ListeningAdded:   []string{"tcp6 [::]:443 nginx"},
		ListeningRemoved: []string{"tcp 0.0.0.0:23 inetd"},
	}
	got := Diff(old, cur)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Diff:\n got %+v\nwant %+v", got, want)
	}
	if got.Empty() || !Diff(cur, cur).Empty() {
		t.Error("Empty is wrong")
	}
	if first := Diff(nil, cur); len(first.Added) != 4 {
		t.Errorf("Diff(nil, cur).Added = %v", first.Added)
	}
}

func TestValidate(t *testing.T) {
	good := func() *Inventory {
		return &Inventory{
			CollectedAt: day0(), Hostname: "web-1", Arch: "amd64", PackageManager: "dpkg",
			Addresses: []string{"10.0.0.1", "fd00::1"},
			Packages:  []Package{{Name: "a", Version: "1"}, {Name: "b", Version: "2"}},
			Pending:   []Update{{Name: "a", Installed: "1", Available: "2"}},
			Listening: []Socket{{Proto: "tcp", Address: "0.0.0.0", Port: 22, PID: 1, Process: "sshd"}},
		}
	}
	if err := Validate(good()); err != nil {
		t.Fatalf("good inventory: %v", err)
	}
	many := func(n int) []Package { return make([]Package, n) }
	for _, tc := range []struct {
		field string
		edit  func(*Inventory)
	}{
		{"collected_at", func(i *Inventory) { i.CollectedAt = time.Time{} }},
		{"hostname", func(i *Inventory) { i.Hostname = strings.Repeat("h", 257) }},
		{"os.pretty_name", func(i *Inventory) { i.OS.PrettyName = "bad\x1b[31m" }},
		{"kernel", func(i *Inventory) { i.Kernel = "\xff\xfe" }},
		{"package_manager", func(i *Inventory) { i.PackageManager = "pacman" }},
		{"addresses[1]", func(i *Inventory) { i.Addresses[1] = "not-an-ip" }},
		{"packages", func(i *Inventory) { i.Packages = many(MaxPackages + 1) }},
		{"packages[1].name", func(i *Inventory) { i.Packages[1].Name = "" }},
		{"packages[0].version", func(i *Inventory) { i.Packages[0].Version = "1\n2" }},
		{"pending_updates[0].available", func(i *Inventory) { i.Pending[0].Available = strings.Repeat("9", 300) }},
		{"listening", func(i *Inventory) { i.Listening = make([]Socket, MaxSockets+1) }},
		{"listening[0].proto", func(i *Inventory) { i.Listening[0].Proto = "sctp" }},
		{"listening[0].address", func(i *Inventory) { i.Listening[0].Address = "" }},
		{"listening[0].port", func(i *Inventory) { i.Listening[0].Port = 70000 }},
		{"listening[0].process", func(i *Inventory) { i.Listening[0].Process = "a\u0085b" }},
		{"addresses", func(i *Inventory) { i.Addresses = make([]string, MaxAddresses+1) }},
	} {
		t.Run(tc.field, func(t *testing.T) {
			inv := good()
			tc.edit(inv)
			err := Validate(inv)
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), ": "+tc.field+": ") {
				t.Errorf("Validate = %v, want an error naming %s", err, tc.field)
			}
		})
	}
}
