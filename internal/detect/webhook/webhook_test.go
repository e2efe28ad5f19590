package webhook

import (
	"net/http"
	"strconv"
	"testing"
	"time"
)

// signVector is the openssl output of the example below.
const signVector = "69c890fdcfd94f79fa4b94b006087c83ae508511016b54806e220688af865107"

// TestSignVector: the documented example (docs/detection.md) verifies with
// any HMAC-SHA256 implementation: printf '%s' '1764669600.{"id":"x"}' |
// openssl dgst -sha256 -hmac 'whsec-0123456789abcdef'.
func TestSignVector(t *testing.T) {
	got := Sign([]byte("whsec-0123456789abcdef"), 1764669600, []byte(`{"id":"x"}`))
	const want = "sha256=" + signVector
	if got != want {
		t.Fatalf("Sign = %s, want %s", got, want)
	}
}

func TestVerify(t *testing.T) {
	secret, body := []byte("whsec-0123456789abcdef"), []byte(`{"id":"x"}`)
	now := time.Unix(1764669600, 0)
	header := func(ts int64, sig string) http.Header {
		h := http.Header{}
		h.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
		h.Set(HeaderSignature, sig)
		return h
	}
	cases := []struct {
		name string
		h    http.Header
		body []byte
		ok   bool
	}{
		{"valid", header(now.Unix(), Sign(secret, now.Unix(), body)), body, true},
		{"other body", header(now.Unix(), Sign(secret, now.Unix(), body)), []byte(`{"id":"y"}`), false},
		{"other secret", header(now.Unix(), Sign([]byte("other-secret-0123"), now.Unix(), body)), body, false},
		{"replayed later", header(now.Unix()-3600, Sign(secret, now.Unix()-3600, body)), body, false},
		{"timestamp moved", header(now.Unix()+1, Sign(secret, now.Unix(), body)), body, false},
		{"no timestamp", http.Header{HeaderSignature: {Sign(secret, now.Unix(), body)}}, body, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := Verify(secret, tc.h, tc.body, now, 5*time.Minute); (err == nil) != tc.ok {
				t.Fatalf("Verify = %v", err)
			}
		})
	}
}

func FuzzVerify(f *testing.F) {
	f.Add("1764669600", "sha256=00", []byte(`{}`))
	f.Fuzz(func(t *testing.T, ts, sig string, body []byte) {
		h := http.Header{}
		h.Set(HeaderTimestamp, ts)
		h.Set(HeaderSignature, sig)
		secret := []byte("whsec-0123456789abcdef")
		if Verify(secret, h, body, time.Unix(1764669600, 0), time.Hour) == nil {
			n, _ := strconv.ParseInt(ts, 10, 64)
			if sig != Sign(secret, n, body) {
				t.Fatalf("accepted a signature that is not Sign's: %q", sig)
			}
		}
	})
}
