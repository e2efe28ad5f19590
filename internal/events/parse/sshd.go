package parse

import (
	"net/netip"
	"strings"

	"github.com/warden-sec/warden/internal/events"
)

// sshd fields with no ECS name (Filebeat's system.auth names).
const (
	FieldSSHMethod      = "system.auth.ssh.method"       // password, publickey, keyboard-interactive/pam, none, ...
	FieldSSHSignature   = "system.auth.ssh.signature"    // "ED25519 SHA256:..." of an accepted or failed key
	FieldSSHInvalidUser = "system.auth.ssh.invalid_user" // true when sshd said the user does not exist
	FieldSyslogRepeated = "syslog.repeated"              // N of rsyslog's "message repeated N times: [ ... ]"
	FieldSourceDomain   = "source.domain"                // the peer when sshd logged a name (UseDNS), not an address
)

// sshd event.action values.
const (
	ActionSSHLogin            = "ssh_login"             // Accepted / Failed <method> for <user> from <ip>
	ActionSSHInvalidUser      = "ssh_invalid_user"      // Invalid user <user> [from <ip>]
	ActionSSHDisconnect       = "ssh_disconnect"        // Connection closed/reset by, Disconnected from, Received disconnect
	ActionSSHMaxAuthAttempts  = "ssh_max_auth_attempts" // maximum authentication attempts exceeded / Too many authentication failures
	ActionSSHNoIdentification = "ssh_no_identification" // Did not receive identification string (a scanner)
	outcomeSuccess            = "success"
	outcomeFailure            = "failure"
	outcomeUnknown            = "unknown"
	categoryAuthentication    = "authentication"
	categoryNetwork           = "network"
)

// sshdParser parses sshd's messages, framed by syslog (auth.log) or bare
// (a journald MESSAGE). A syslog line from another program (sudo, CRON,
// systemd-logind) becomes a syslog event. A bare line must be a known
// sshd message.
type sshdParser struct{ sys syslogParser }

func (p *sshdParser) Parse(line []byte, ev events.Event) error {
	s := string(line)
	var f frame
	if looksFramed(s) && p.sys.frame(s, &f) == nil {
		if !isSSHD(f.app) {
			base(ev, "syslog", "syslog", s)
			f.apply(ev)
			return nil
		}
		base(ev, "sshd", "sshd", s)
		f.apply(ev)
		sshdMessage(f.msg, ev)
		return nil
	}
	base(ev, "sshd", "sshd", s)
	if !sshdMessage(s, ev) {
		return lineError("sshd", "neither a syslog line nor a known sshd message")
	}
	ev[events.FieldTimestamp] = events.FormatTime(p.sys.opts.Now())
	return nil
}

// looksFramed reports whether s may start with a syslog header (a PRI,
// an RFC 3339 or "Mmm " timestamp), sparing bare messages the cost of a
// refused frame.
func looksFramed(s string) bool {
	s = strings.TrimLeft(s, " ")
	if s == "" {
		return false
	}
	if c := s[0]; c == '<' || c >= '0' && c <= '9' {
		return true
	}
	if len(s) < 4 || s[3] != ' ' {
		return false
	}
	for _, m := range months {
		if s[:3] == m {
			return true
		}
	}
	return false
}

// isSSHD reports whether a syslog TAG is sshd's: "sshd", or OpenSSH
// 9.8's per-session "sshd-session" (and "sshd-auth").
func isSSHD(app string) bool {
	return app == "sshd" || strings.HasPrefix(app, "sshd-")
}

// sshdMessage fills ev from one sshd message and reports whether it was
// one it knows.
func sshdMessage(m string, ev events.Event) bool {
	if rest, ok := strings.CutPrefix(m, "message repeated "); ok {
		if i := strings.Index(rest, " times: [ "); i > 0 {
			if n, ok := atoi(rest[:i]); ok {
				ev[FieldSyslogRepeated] = int64(n)
				m = strings.TrimSuffix(rest[i+len(" times: [ "):], "]")
			}
		}
	}
	m = strings.TrimRight(m, " ")
	m = strings.TrimSuffix(m, " [preauth]")
	m = strings.TrimPrefix(m, "error: ")
	switch {
	case strings.HasPrefix(m, "Accepted "):
		return sshLogin(m[len("Accepted "):], outcomeSuccess, ev)
	case strings.HasPrefix(m, "Failed "):
		return sshLogin(m[len("Failed "):], outcomeFailure, ev)
	case strings.HasPrefix(m, "Invalid user "):
		rest := m[len("Invalid user "):]
		user, addr := rest, ""
		if i := strings.LastIndex(rest, " from "); i >= 0 {
			user, addr = rest[:i], rest[i+len(" from "):]
		}
		auth(ev, ActionSSHInvalidUser, outcomeFailure)
		ev[events.FieldUserName] = user
		ev[FieldSSHInvalidUser] = true
		if addr != "" {
			setAddr(ev, addr)
		}
		return true
	case strings.HasPrefix(m, "input_userauth_request: invalid user "):
		auth(ev, ActionSSHInvalidUser, outcomeFailure)
		ev[events.FieldUserName] = m[len("input_userauth_request: invalid user "):]
		ev[FieldSSHInvalidUser] = true
		return true
	case strings.HasPrefix(m, "Connection closed by "):
		return sshDisconnect(m[len("Connection closed by "):], ev)
	case strings.HasPrefix(m, "Connection reset by "):
		return sshDisconnect(m[len("Connection reset by "):], ev)
	case strings.HasPrefix(m, "Disconnected from "):
		return sshDisconnect(m[len("Disconnected from "):], ev)
	case strings.HasPrefix(m, "Received disconnect from "):
		auth(ev, ActionSSHDisconnect, outcomeUnknown)
		setAddr(ev, m[len("Received disconnect from "):])
		return true
	case strings.HasPrefix(m, "maximum authentication attempts exceeded for "):
		rest := m[len("maximum authentication attempts exceeded for "):]
		i := strings.LastIndex(rest, " from ")
		if i < 0 {
			return false
		}
		auth(ev, ActionSSHMaxAuthAttempts, outcomeFailure)
		setUser(ev, rest[:i])
		setAddr(ev, rest[i+len(" from "):])
		return true
	case strings.HasPrefix(m, "Disconnecting "):
		rest := m[len("Disconnecting "):]
		i := strings.Index(rest, ": Too many authentication failures")
		if i < 0 {
			return false
		}
		// Follows "maximum authentication attempts exceeded", which is
		// the failure; this is the disconnect.
		auth(ev, ActionSSHDisconnect, outcomeUnknown)
		userAddr(ev, rest[:i])
		return true
	case strings.HasPrefix(m, "Did not receive identification string from "):
		auth(ev, ActionSSHNoIdentification, outcomeFailure)
		ev[events.FieldCategory] = categoryNetwork // no authentication was tried
		setAddr(ev, m[len("Did not receive identification string from "):])
		return true
	}
	return false
}

func auth(ev events.Event, action, outcome string) {
	ev[events.FieldCategory] = categoryAuthentication
	ev[events.FieldAction] = action
	ev[events.FieldOutcome] = outcome
}

// sshLogin parses "<method> for [invalid user ]<user> from <ip> port <n>
// ssh2[: <key type> <fingerprint>]".
func sshLogin(m, outcome string, ev events.Event) bool {
	sp := strings.IndexByte(m, ' ')
	if sp <= 0 || !strings.HasPrefix(m[sp:], " for ") {
		return false
	}
	method, rest := m[:sp], m[sp+len(" for "):]
	i := strings.LastIndex(rest, " from ")
	if i < 0 {
		return false
	}
	auth(ev, ActionSSHLogin, outcome)
	ev[FieldSSHMethod] = method
	setUser(ev, rest[:i])
	after := setAddr(ev, rest[i+len(" from "):])
	if j := strings.Index(after, "ssh2: "); j >= 0 {
		if sig := strings.TrimSpace(after[j+len("ssh2: "):]); sig != "" {
			ev[FieldSSHSignature] = sig
		}
	}
	return true
}

// setUser sets user.name from "[invalid user ]<user>".
func setUser(ev events.Event, u string) {
	if rest, ok := strings.CutPrefix(u, "invalid user "); ok {
		ev[FieldSSHInvalidUser] = true
		u = rest
	}
	ev[events.FieldUserName] = u
}

// sshDisconnect parses what follows "Connection closed by" and
// "Disconnected from": "[authenticating |invalid ]user <user> <ip> port
// <n>" or "<ip> port <n>". A disconnect is not an authentication result:
// its outcome is unknown (the failures before it have their own events),
// so counting failures counts attempts, not lines.
func sshDisconnect(m string, ev events.Event) bool {
	auth(ev, ActionSSHDisconnect, outcomeUnknown)
	userAddr(ev, m)
	return true
}

// userAddr parses "[authenticating |invalid ]user <user> <ip>[ port <n>]"
// or "<ip>[ port <n>]" from the right, so a user name holding spaces
// stays whole.
func userAddr(ev events.Event, m string) {
	head := m
	if i := strings.LastIndex(m, " port "); i >= 0 {
		head = m[:i]
		if n, ok := leadingInt(m[i+len(" port "):]); ok {
			ev[events.FieldSourcePort] = int64(n)
		}
	}
	ip, pre := head, ""
	if j := strings.LastIndexByte(head, ' '); j >= 0 {
		ip, pre = head[j+1:], head[:j]
	}
	setHost(ev, ip)
	switch {
	case strings.HasPrefix(pre, "authenticating user "):
		ev[events.FieldUserName] = pre[len("authenticating user "):]
	case strings.HasPrefix(pre, "invalid user "):
		ev[events.FieldUserName] = pre[len("invalid user "):]
		ev[FieldSSHInvalidUser] = true
	case strings.HasPrefix(pre, "user "):
		ev[events.FieldUserName] = pre[len("user "):]
	}
}

// setAddr parses "<ip>[ port <n>]<rest>" and returns rest (the port may
// be followed directly by ':', as in "Received disconnect from <ip> port
// <n>:11: Bye").
func setAddr(ev events.Event, s string) string {
	s = strings.TrimLeft(s, " ")
	i := 0
	for i < len(s) && s[i] != ' ' {
		i++
	}
	ip, rest := s[:i], s[i:]
	setHost(ev, ip)
	if r, ok := strings.CutPrefix(strings.TrimLeft(rest, " "), "port "); ok {
		r = strings.TrimLeft(r, " ")
		n, k := leadingDigits(r)
		if k > 0 {
			ev[events.FieldSourcePort] = int64(n)
		}
		rest = r[k:]
	}
	return strings.TrimLeft(rest, " ")
}

// setHost sets source.ip when s is an address, else source.domain.
func setHost(ev events.Event, s string) {
	if s == "" {
		return
	}
	if _, err := netip.ParseAddr(s); err == nil {
		ev[events.FieldSourceIP] = s
		return
	}
	ev[FieldSourceDomain] = s
}

func leadingDigits(s string) (n, k int) {
	for k < len(s) && k < 18 && s[k] >= '0' && s[k] <= '9' {
		n = n*10 + int(s[k]-'0')
		k++
	}
	return n, k
}

func leadingInt(s string) (int, bool) {
	n, k := leadingDigits(s)
	return n, k > 0
}
