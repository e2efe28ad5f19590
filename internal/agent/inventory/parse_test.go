package inventory

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pierrec/lz4/v4"
)

// Orderings from deb-version(7) and Debian policy 5.6.12: each version
// sorts strictly before the next.
func TestCompareVersionsOrder(t *testing.T) {
	ordered := []string{
		"~~", "~~a", "~", "0", "0.1~rc1", "0.1", "0.1-1", "0.1a", "0.1+b1", "0.1.1",
		"1.0~beta", "1.0-0~1", "1.0", "1.0-1", "1.0-1+b1", "1.0-2", "1.0a", "1.0+dfsg",
		"1.2", "1.10", "2:0.1", "10:0",
	}
	for i := range ordered {
		for j := range ordered {
			want := sign(i - j)
			if got := CompareVersions(ordered[i], ordered[j]); got != want {
				t.Errorf("CompareVersions(%q, %q) = %d, want %d", ordered[i], ordered[j], got, want)
			}
		}
	}
}

func TestCompareVersionsEqual(t *testing.T) {
	for _, p := range [][2]string{
		{"1.0", "1.00"}, {"0:1.0", "1.0"}, {"1.0-0", "1.0-00"}, {"01:2", "1:2"},
		{"1.0-", "1.0"}, // an empty revision
	} {
		if c := CompareVersions(p[0], p[1]); c != 0 {
			t.Errorf("CompareVersions(%q, %q) = %d, want 0", p[0], p[1], c)
		}
	}
	// An epoch that is not digits is part of the upstream version.
	if c := CompareVersions("a:1", "1"); c <= 0 {
		t.Errorf("CompareVersions(a:1, 1) = %d", c)
	}
}

// TestCompareVersionsDpkg checks the order against dpkg itself, which this
// Debian machine has.
func TestCompareVersionsDpkg(t *testing.T) {
	dpkg, err := exec.LookPath("dpkg")
	if err != nil {
		t.Fatalf("dpkg not found on this Debian machine: %v", err)
	}
	vs := []string{"1:9.2p1-2+deb12u2", "1:9.2p1-2+deb12u10", "9.2p1", "2.36-9+deb12u4", "2.36-9+deb12u4~1",
		"20230311+deb12u1", "20250419~deb12u2", "1.6-2.1+deb12u1", "1.6-2.1+deb12u3", "0.16.1-2", "0.16.1-2+b1"}
	for _, a := range vs {
		for _, b := range vs {
			want := 0
			for _, c := range []struct {
				op  string
				res int
			}{{"lt", -1}, {"gt", 1}} {
				if exec.Command(dpkg, "--compare-versions", a, c.op, b).Run() == nil {
					want = c.res
				}
			}
			if got := CompareVersions(a, b); got != want {
				t.Errorf("CompareVersions(%q, %q) = %d, dpkg says %d", a, b, got, want)
			}
		}
	}
}

func FuzzCompareVersions(f *testing.F) {
	f.Add("1.0", "1.0~rc1", "1:0.9")
	f.Add("2.36-9+deb12u4", "2.36-9", "2.36-10")
	f.Add("~", "", "0")
	f.Add("1.0-", "1.0", "a:1")
	f.Fuzz(func(t *testing.T, a, b, c string) {
		ab, ba := CompareVersions(a, b), CompareVersions(b, a)
		if ab != -ba {
			t.Fatalf("antisymmetry: cmp(%q,%q)=%d, cmp(%q,%q)=%d", a, b, ab, b, a, ba)
		}
		if CompareVersions(a, a) != 0 {
			t.Fatalf("reflexivity: %q", a)
		}
		bc, ac := CompareVersions(b, c), CompareVersions(a, c)
		if ab <= 0 && bc <= 0 && ac > 0 {
			t.Fatalf("transitivity: %q <= %q <= %q but cmp(a,c)=%d", a, b, c, ac)
		}
		if ab == 0 && bc == 0 && ac != 0 {
			t.Fatalf("equality not transitive: %q %q %q", a, b, c)
		}
	})
}

func FuzzDpkgStatus(f *testing.F) {
	seed, err := os.ReadFile("testdata/debian/var/lib/dpkg/status")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	f.Add([]byte("Package: a\nStatus: install ok installed\n\n\n"))
	f.Add([]byte(":\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		pkgs, err := parseDpkgStatus(bytes.NewReader(data))
		if err != nil {
			return
		}
		for _, p := range pkgs {
			if p.Name == "" || strings.ContainsAny(p.Name, "\n") {
				t.Fatalf("package %+v", p)
			}
		}
		// Lists use the same scanner with skipping; skipping nothing
		// must see the same paragraphs.
		var n int
		if err := scanDeb(bytes.NewReader(data), func(string) bool { return false }, func(debFields) { n++ }); err != nil {
			t.Fatalf("skip scan failed where the plain one did not: %v", err)
		}
	})
}

func FuzzApkInstalled(f *testing.F) {
	seed, err := os.ReadFile("testdata/alpine/lib/apk/db/installed")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	f.Add([]byte("P:x\n\nP:\nV:1\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		pkgs, err := parseApkInstalled(bytes.NewReader(data))
		if err != nil {
			return
		}
		for _, p := range pkgs {
			if p.Name == "" {
				t.Fatalf("package without a name: %+v", p)
			}
		}
	})
}

func FuzzProcNet(f *testing.F) {
	for _, n := range []string{"tcp", "tcp6", "udp", "udp6"} {
		seed, err := os.ReadFile(filepath.Join("testdata/debian/proc/net", n))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(seed, strings.HasPrefix(n, "udp"))
	}
	f.Fuzz(func(t *testing.T, data []byte, udp bool) {
		socks, err := parseProcNet(bytes.NewReader(data), udp)
		if err != nil {
			return
		}
		for _, s := range socks {
			if !s.Addr.IsValid() || s.Port < 0 || s.Port > 65535 {
				t.Fatalf("socket %+v", s)
			}
		}
	})
}

func TestParseProcNetErrors(t *testing.T) {
	head := "  sl  local_address rem_address   st\n"
	for _, body := range []string{
		"0: 00000000:0016 00000000:0000 0A 0 0 0 0 0 notanumber\n",
		"0: 0000000G:0016 00000000:0000 0A 0 0 0 0 0 1\n",
		"0: 000000:0016 00000000:0000 0A 0 0 0 0 0 1\n",
		"0: 00000000:16 00000000:0000 0A 0 0 0 0 0 1\n",
		"0: 00000000:0016 00000000:0000 ZZ 0 0 0 0 0 1\n",
		"0: 00000000:0016\n",
	} {
		if _, err := parseProcNet(strings.NewReader(head+body), false); err == nil || !strings.Contains(err.Error(), "line 2") {
			t.Errorf("%q: err %v, want one naming line 2", body, err)
		}
	}
}

// TestLZ4 decodes frames in the block sizes and with the flags apt and
// the lz4 command use, and two frames in a row.
func TestLZ4(t *testing.T) {
	var plain bytes.Buffer
	for i := 0; plain.Len() < 600<<10; i++ {
		plain.WriteString("Package: p")
		plain.WriteString(strings.Repeat("x", i%37))
		plain.WriteString("\nVersion: 1.0\nArchitecture: amd64\n\n")
	}
	for name, opts := range map[string][]lz4.Option{
		"64 KiB blocks":         {lz4.BlockSizeOption(lz4.Block64Kb)},
		"dependent blocks, 4MB": {lz4.BlockSizeOption(lz4.Block4Mb), lz4.ChecksumOption(false)},
		"block checksums":       {lz4.BlockChecksumOption(true), lz4.SizeOption(uint64(plain.Len()))},
		"level 9":               {lz4.CompressionLevelOption(lz4.Level9)},
	} {
		t.Run(name, func(t *testing.T) {
			var compressed bytes.Buffer
			for range 2 {
				w := lz4.NewWriter(&compressed)
				if err := w.Apply(opts...); err != nil {
					t.Fatal(err)
				}
				if _, err := w.Write(plain.Bytes()); err != nil {
					t.Fatal(err)
				}
				if err := w.Close(); err != nil {
					t.Fatal(err)
				}
			}
			got, err := io.ReadAll(newLZ4Reader(&compressed))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, append(plain.Bytes(), plain.Bytes()...)) {
				t.Fatalf("decoded %d bytes, want %d", len(got), 2*plain.Len())
			}
		})
	}
	if _, err := io.ReadAll(newLZ4Reader(strings.NewReader("not lz4 at all"))); err == nil {
		t.Error("garbage decoded without an error")
	}
}

func FuzzLZ4(f *testing.F) {
	seed, err := os.ReadFile("testdata/debian/var/lib/apt/lists/security_dists_bookworm-security_main_binary-amd64_Packages.lz4")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	f.Fuzz(func(t *testing.T, data []byte) {
		n, _ := io.Copy(io.Discard, io.LimitReader(newLZ4Reader(bytes.NewReader(data)), 64<<20))
		if n >= 64<<20 {
			t.Fatalf("%d input bytes decoded to more than 64 MiB", len(data))
		}
	})
}

func TestParseRPM(t *testing.T) {
	out := "bash\t5.1.8-9.el9\tx86_64\t1700000000\ngpg-pubkey\t8483c65d-5ccc5b19\t(none)\t1700000100\nopenssl\t1:3.0.7-27.el9\tx86_64\t0\nbroken line\n"
	got := parseRPM([]byte(out))
	if len(got) != 3 || got[0].Name != "bash" || got[0].InstalledAt.Unix() != 1700000000 ||
		got[1].Arch != "" || got[2].Version != "1:3.0.7-27.el9" || !got[2].InstalledAt.IsZero() {
		t.Errorf("parseRPM = %+v", got)
	}
}

// FuzzValidate: what a server does with a node's inventory (strict JSON,
// then Validate) never panics, and an inventory Validate accepts survives
// a JSON round trip with the same fingerprint.
func FuzzValidate(f *testing.F) {
	f.Add([]byte(`{"collected_at":"2026-12-03T10:00:00Z","hostname":"h","os":{"id":"debian"},"kernel":"6.1","arch":"amd64","agent_version":"v1","addresses":["192.0.2.1"],"package_manager":"dpkg","packages":[{"name":"bash","version":"5.2","arch":"amd64"}],"pending_known":true,"listening":[{"proto":"tcp","address":"0.0.0.0","port":22,"process":"sshd"}]}`))
	f.Add([]byte(`{"collected_at":"2026-12-03T10:00:00Z","enforcement":"iptables"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var inv Inventory
		if json.Unmarshal(data, &inv) != nil {
			return
		}
		if Validate(&inv) != nil {
			return
		}
		b, err := json.Marshal(&inv)
		if err != nil {
			t.Fatal(err)
		}
		var back Inventory
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatal(err)
		}
		if back.Fingerprint() != inv.Fingerprint() {
			t.Fatal("the fingerprint changed through JSON")
		}
	})
}
