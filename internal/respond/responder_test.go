package respond

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/warden-sec/warden/internal/detect"
)

func TestSourceIP(t *testing.T) {
	ev := func(s string) []json.RawMessage { return []json.RawMessage{json.RawMessage(s)} }
	cases := []struct {
		name   string
		al     detect.Alert
		ip     string
		reason string
	}{
		{"group", detect.Alert{Group: map[string]string{"source.ip": "203.0.113.7"}, Events: ev(`{"source.ip": "198.51.100.1"}`)}, "203.0.113.7", ""},
		{"first event", detect.Alert{Group: map[string]string{"host.name": "web-1"}, Events: ev(`{"source.ip": "198.51.100.1"}`)}, "198.51.100.1", ""},
		{"nested event", detect.Alert{Events: ev(`{"source": {"ip": "2001:db8::1"}}`)}, "2001:db8::1", ""},
		{"none", detect.Alert{Events: ev(`{"message": "x"}`)}, "", "no source.ip"},
		{"not an address", detect.Alert{Group: map[string]string{"source.ip": "example.com"}}, "", "not an IP address"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ip, why := SourceIP(&c.al)
			if ip != c.ip || (c.reason != "" && !strings.Contains(why, c.reason)) {
				t.Fatalf("SourceIP = %q, %q; want %q, %q", ip, why, c.ip, c.reason)
			}
		})
	}
}

func TestAlertHost(t *testing.T) {
	cases := []struct {
		name string
		al   detect.Alert
		host string
	}{
		{"group", detect.Alert{Group: map[string]string{"host.name": "db-1"}, Hosts: []string{"db-1", "web-1"}}, "db-1"},
		{"only host", detect.Alert{Hosts: []string{"web-1"}}, "web-1"},
		{"several hosts", detect.Alert{Hosts: []string{"web-1", "web-2"}}, ""},
		{"none", detect.Alert{}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if h, why := alertHost(&c.al); h != c.host || (h == "" && why == "") {
				t.Fatalf("alertHost = %q, %q; want %q", h, why, c.host)
			}
		})
	}
}
