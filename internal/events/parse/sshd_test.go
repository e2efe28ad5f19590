package parse

import (
	"testing"

	"github.com/warden-sec/warden/internal/events"
)

// sshdFramed is the syslog frame of an auth.log line from sshd[4242] on web1.
var sshdFramed = events.Event{"event.module": "sshd", "event.dataset": "sshd", "@timestamp": "2026-12-02T10:00:00Z",
	"host.hostname": "web1", "process.name": "sshd", "process.pid": int64(4242)}

func ssh(msg string, extra events.Event) events.Event {
	ev := events.Event{"syslog.message": msg}
	for k, v := range sshdFramed {
		ev[k] = v
	}
	for k, v := range extra {
		ev[k] = v
	}
	return ev
}

func login(outcome, method, user, ip string, port int64) events.Event {
	return events.Event{"event.category": "authentication", "event.action": "ssh_login", "event.outcome": outcome,
		"system.auth.ssh.method": method, "user.name": user, "source.ip": ip, "source.port": port}
}

func with(ev events.Event, kv ...any) events.Event {
	out := events.Event{}
	for k, v := range ev {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		out[kv[i].(string)] = kv[i+1]
	}
	return out
}

func TestSSHD(t *testing.T) {
	const pre = "Dec  2 10:00:00 web1 sshd[4242]: "
	var cases []parseCase
	framed := []struct {
		name, msg string
		want      events.Event
	}{
		{"accepted password", "Accepted password for alice from 203.0.113.7 port 52211 ssh2",
			login("success", "password", "alice", "203.0.113.7", 52211)},
		{"accepted publickey v6", "Accepted publickey for deploy from 2001:db8::1 port 40022 ssh2: ED25519 SHA256:Sx1Jf3Lh0yqCBnwWWm0kHf4Z5bJ8aQ2L3yGZl9UQk0E",
			with(login("success", "publickey", "deploy", "2001:db8::1", 40022), "system.auth.ssh.signature", "ED25519 SHA256:Sx1Jf3Lh0yqCBnwWWm0kHf4Z5bJ8aQ2L3yGZl9UQk0E")},
		{"failed password", "Failed password for root from 203.0.113.7 port 52211 ssh2",
			login("failure", "password", "root", "203.0.113.7", 52211)},
		{"failed password invalid user", "Failed password for invalid user admin from 198.51.100.9 port 4444 ssh2",
			with(login("failure", "password", "admin", "198.51.100.9", 4444), "system.auth.ssh.invalid_user", true)},
		{"failed publickey", "Failed publickey for git from ::ffff:198.51.100.9 port 22 ssh2: RSA SHA256:abc",
			with(login("failure", "publickey", "git", "::ffff:198.51.100.9", 22), "system.auth.ssh.signature", "RSA SHA256:abc")},
		{"failed none invalid empty user", "Failed none for invalid user  from 198.51.100.9 port 4444 ssh2",
			with(login("failure", "none", "", "198.51.100.9", 4444), "system.auth.ssh.invalid_user", true)},
		{"keyboard-interactive", "Accepted keyboard-interactive/pam for bob from 192.0.2.1 port 1 ssh2",
			login("success", "keyboard-interactive/pam", "bob", "192.0.2.1", 1)},
		{"failed keyboard-interactive preauth", "Failed keyboard-interactive/pam for invalid user oracle from 192.0.2.1 port 2 ssh2 [preauth]",
			with(login("failure", "keyboard-interactive/pam", "oracle", "192.0.2.1", 2), "system.auth.ssh.invalid_user", true)},
		{"user with from in name", "Failed password for invalid user x from y from 192.0.2.1 port 2 ssh2",
			with(login("failure", "password", "x from y", "192.0.2.1", 2), "system.auth.ssh.invalid_user", true)},
		{"invalid user", "Invalid user admin from 198.51.100.9 port 4444",
			events.Event{"event.category": "authentication", "event.action": "ssh_invalid_user", "event.outcome": "failure",
				"user.name": "admin", "source.ip": "198.51.100.9", "source.port": int64(4444), "system.auth.ssh.invalid_user": true}},
		{"invalid user no port", "Invalid user test from 2001:db8::7",
			events.Event{"event.category": "authentication", "event.action": "ssh_invalid_user", "event.outcome": "failure",
				"user.name": "test", "source.ip": "2001:db8::7", "system.auth.ssh.invalid_user": true}},
		{"invalid user no from", "input_userauth_request: invalid user guest [preauth]",
			events.Event{"event.category": "authentication", "event.action": "ssh_invalid_user", "event.outcome": "failure",
				"user.name": "guest", "system.auth.ssh.invalid_user": true}},
		{"closed authenticating", "Connection closed by authenticating user root 203.0.113.7 port 52211 [preauth]",
			events.Event{"event.category": "authentication", "event.action": "ssh_disconnect", "event.outcome": "unknown",
				"user.name": "root", "source.ip": "203.0.113.7", "source.port": int64(52211)}},
		{"reset invalid", "Connection reset by invalid user ubnt 2001:db8::2 port 5 [preauth]",
			events.Event{"event.category": "authentication", "event.action": "ssh_disconnect", "event.outcome": "unknown",
				"user.name": "ubnt", "source.ip": "2001:db8::2", "source.port": int64(5), "system.auth.ssh.invalid_user": true}},
		{"closed bare", "Connection closed by 203.0.113.7 port 52211 [preauth]",
			events.Event{"event.category": "authentication", "event.action": "ssh_disconnect", "event.outcome": "unknown",
				"source.ip": "203.0.113.7", "source.port": int64(52211)}},
		{"disconnected user", "Disconnected from user alice 203.0.113.7 port 52211",
			events.Event{"event.category": "authentication", "event.action": "ssh_disconnect", "event.outcome": "unknown",
				"user.name": "alice", "source.ip": "203.0.113.7", "source.port": int64(52211)}},
		{"disconnected invalid", "Disconnected from invalid user admin 203.0.113.7 port 52211 [preauth]",
			events.Event{"event.category": "authentication", "event.action": "ssh_disconnect", "event.outcome": "unknown",
				"user.name": "admin", "source.ip": "203.0.113.7", "source.port": int64(52211), "system.auth.ssh.invalid_user": true}},
		{"received disconnect", "Received disconnect from 203.0.113.7 port 52211:11: Bye Bye [preauth]",
			events.Event{"event.category": "authentication", "event.action": "ssh_disconnect", "event.outcome": "unknown",
				"source.ip": "203.0.113.7", "source.port": int64(52211)}},
		{"max auth", "error: maximum authentication attempts exceeded for root from 203.0.113.7 port 52211 ssh2 [preauth]",
			events.Event{"event.category": "authentication", "event.action": "ssh_max_auth_attempts", "event.outcome": "failure",
				"user.name": "root", "source.ip": "203.0.113.7", "source.port": int64(52211)}},
		{"max auth invalid", "error: maximum authentication attempts exceeded for invalid user pi from 203.0.113.7 port 1 ssh2 [preauth]",
			events.Event{"event.category": "authentication", "event.action": "ssh_max_auth_attempts", "event.outcome": "failure",
				"user.name": "pi", "source.ip": "203.0.113.7", "source.port": int64(1), "system.auth.ssh.invalid_user": true}},
		{"too many failures", "Disconnecting authenticating user root 203.0.113.7 port 52211: Too many authentication failures [preauth]",
			events.Event{"event.category": "authentication", "event.action": "ssh_disconnect", "event.outcome": "unknown",
				"user.name": "root", "source.ip": "203.0.113.7", "source.port": int64(52211)}},
		{"no identification", "Did not receive identification string from 203.0.113.7 port 41000",
			events.Event{"event.category": "network", "event.action": "ssh_no_identification", "event.outcome": "failure",
				"source.ip": "203.0.113.7", "source.port": int64(41000)}},
		{"hostname peer", "Failed password for root from scanner.example.net port 22 ssh2",
			events.Event{"event.category": "authentication", "event.action": "ssh_login", "event.outcome": "failure",
				"system.auth.ssh.method": "password", "user.name": "root", "source.domain": "scanner.example.net", "source.port": int64(22)}},
		{"repeated", "message repeated 3 times: [ Failed password for root from 203.0.113.7 port 52211 ssh2]",
			with(login("failure", "password", "root", "203.0.113.7", 52211), "syslog.repeated", int64(3))},
		{"other sshd message", "Server listening on 0.0.0.0 port 22.", events.Event{}},
		{"pam session", "pam_unix(sshd:session): session opened for user alice(uid=1000) by (uid=0)", events.Event{}},
	}
	for _, c := range framed {
		cases = append(cases, parseCase{c.name, pre + c.msg, ssh(c.msg, c.want)})
	}
	cases = append(cases,
		parseCase{"sshd-session tag", "2026-12-02T10:00:00.5+00:00 web1 sshd-session[9]: Failed password for root from 203.0.113.7 port 2 ssh2",
			with(login("failure", "password", "root", "203.0.113.7", 2), "event.module", "sshd", "event.dataset", "sshd",
				"@timestamp", "2026-12-02T10:00:00.5Z", "host.hostname", "web1", "process.name", "sshd-session", "process.pid", int64(9),
				"syslog.message", "Failed password for root from 203.0.113.7 port 2 ssh2")},
		parseCase{"bare (journald)", "Failed password for root from 203.0.113.7 port 2 ssh2",
			with(login("failure", "password", "root", "203.0.113.7", 2), "event.module", "sshd", "event.dataset", "sshd",
				"@timestamp", "2026-12-02T12:00:00Z")},
		parseCase{"bare odd spacing", "Accepted password for alice from  203.0.113.7  port 2 ssh2  ",
			with(login("success", "password", "alice", "203.0.113.7", 2), "event.module", "sshd", "event.dataset", "sshd",
				"@timestamp", "2026-12-02T12:00:00Z")},
		parseCase{"sudo is syslog", "Dec  2 10:00:00 web1 sudo: pam_unix(sudo:session): session opened for user root(uid=0) by alice(uid=1000)",
			sys(events.Event{"@timestamp": "2026-12-02T10:00:00Z", "host.hostname": "web1", "process.name": "sudo",
				"syslog.message": "pam_unix(sudo:session): session opened for user root(uid=0) by alice(uid=1000)"})},
		parseCase{"CRON is syslog", "Dec  2 10:17:01 web1 CRON[100]: pam_unix(cron:session): session closed for user root",
			sys(events.Event{"@timestamp": "2026-12-02T10:17:01Z", "host.hostname": "web1", "process.name": "CRON", "process.pid": int64(100),
				"syslog.message": "pam_unix(cron:session): session closed for user root"})},
		parseCase{"bare unknown", "something else entirely", nil},
		parseCase{"empty", "", nil},
		parseCase{"bare truncated", "Failed password for root", nil},
	)
	runCases(t, mustNew(t, "sshd", testOptions()), cases)
}
