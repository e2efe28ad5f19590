package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/skip2/go-qrcode"
	"github.com/spf13/cobra"

	"github.com/warden-sec/warden/pkg/client"
)

// "warden user ...": local accounts, their passwords and second factors.

func newUserCmd(g *globals) *cobra.Command {
	enroll := newGroupCmd("enroll", "Enroll a second factor for your own user", newTOTPEnrollCmd(g))
	mfa := newGroupCmd("mfa", "Second factors: enroll TOTP, new recovery codes, reset a user's",
		enroll, newRecoveryCodesCmd(g), newMFAResetCmd(g))
	return newGroupCmd("user", "Local user accounts: create, list, show, update, disable, enable, delete, unlock; passwords and second factors",
		newUserCreateCmd(g), newUserListCmd(g), newUserShowCmd(g), newUserUpdateCmd(g),
		newUserActionCmd(g, "disable", "Disable a user: no more logins, and its tokens are revoked",
			"Success! Disabled user %s and revoked its tokens.\n", (*client.Client).UserDisable),
		newUserActionCmd(g, "enable", "Enable a disabled user",
			"Success! Enabled user %s.\n", (*client.Client).UserEnable),
		newUserActionCmd(g, "delete", "Delete a user and revoke its tokens",
			"Success! Deleted user %s and revoked its tokens.\n", (*client.Client).UserDelete),
		newUserActionCmd(g, "unlock", "End a user's login backoff after failed logins, on every node",
			"Success! Unlocked user %s.\n", (*client.Client).UserUnlock),
		newUserPasswdCmd(g), mfa)
}

func userRows(u client.UserView) []row {
	mfa, passkeys := u.MFA, make([]string, 0, len(u.Passkeys))
	if mfa == nil {
		mfa = []string{}
	}
	for _, p := range u.Passkeys {
		passkeys = append(passkeys, p.Name)
	}
	groups := u.Groups
	if groups == nil {
		groups = []string{}
	}
	rows := []row{{"Name", u.Name}, {"Groups", groups}, {"Disabled", u.Disabled}, {"Has Password", u.HasPassword},
		{"MFA", mfa}, {"Recovery Codes Left", u.RecoveryCodesLeft}, {"Passkeys", passkeys},
		{"Created Time", u.CreatedTime}, {"Updated Time", u.UpdatedTime}, {"Locked", u.Locked}}
	if u.Locked {
		rows = append(rows, row{"Locked Until", u.LockedUntil})
	}
	return rows
}

func newUserCreateCmd(g *globals) *cobra.Command {
	var groups []string
	var fromStdin, noPassword bool
	cmd := &cobra.Command{
		Use:   "create NAME [--group G]... [--password-stdin | --no-password]",
		Short: "Create a local user",
		Long: `Create a local user. The password is the first line of stdin with
--password-stdin; otherwise, when stdin is a terminal, it is asked for twice
without echo. --no-password creates an account without one, which logs in
with single sign-on or a passkey only.`,
		Args: args(cobra.ExactArgs(1)),
	}
	f := addFormat(cmd)
	cmd.Flags().StringArrayVar(&groups, "group", nil, "a group of the user (repeatable)")
	cmd.Flags().BoolVar(&fromStdin, "password-stdin", false, "read the password from the first line of stdin")
	cmd.Flags().BoolVar(&noPassword, "no-password", false, "no password: single sign-on or passkeys only")
	cmd.RunE = func(cmd *cobra.Command, a []string) error {
		req := client.UserCreateRequest{Name: a[0], Groups: groups}
		p := g.prompter(cmd)
		switch {
		case fromStdin && noPassword:
			return usagef("give either --password-stdin or --no-password, not both")
		case !noPassword && !fromStdin && !p.tty:
			return usagef("no password: give --password-stdin, run in a terminal to be asked, " +
				"or --no-password for an account that logs in with single sign-on or a passkey only")
		}
		c, err := g.client(cmd)
		if err != nil {
			return err
		}
		if !noPassword {
			if req.Password, err = p.newPassword(fromStdin, "Password for "+a[0]); err != nil {
				return err
			}
		}
		u, err := c.UserCreate(cmd.Context(), req)
		if err != nil {
			return err
		}
		return output(cmd.OutOrStdout(), f, u, userRows(u))
	}
	return cmd
}

func newUserListCmd(g *globals) *cobra.Command {
	var after string
	var limit int
	cmd := &cobra.Command{
		Use:   "list [--after NAME] [--limit N]",
		Short: "List local users by name, one page at a time",
		Args:  args(cobra.NoArgs),
	}
	f := addFormat(cmd)
	cmd.Flags().StringVar(&after, "after", "", "list the users whose names come after this one (from the previous page)")
	cmd.Flags().IntVar(&limit, "limit", 0, "users per page (0: the server's default)")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if limit < 0 {
			return usagef("--limit: want 0 (the server's default) or more, got %d", limit)
		}
		c, err := g.client(cmd)
		if err != nil {
			return err
		}
		us, next, err := c.UserList(cmd.Context(), after, limit)
		if err != nil {
			return err
		}
		w := cmd.OutOrStdout()
		if *f == "json" {
			// The API's shape: "next" only when there is a next page.
			return writeJSON(w, struct {
				Users []client.UserView `json:"users"`
				Next  string            `json:"next,omitempty"`
			}{us, next})
		}
		rows := []row{{"NAME", "GROUPS\tPASSWORD\tMFA\tDISABLED\tLOCKED"}}
		for _, u := range us {
			rows = append(rows, row{cell(u.Name), strings.Join([]string{listCell(u.Groups), yesNo(u.HasPassword),
				listCell(u.MFA), yesNo(u.Disabled), yesNo(u.Locked)}, "\t")})
		}
		if err := writeTableRaw(w, rows); err != nil {
			return err
		}
		if next != "" {
			fmt.Fprintf(w, "\nmore: --after %s\n", next)
		}
		return nil
	}
	return cmd
}

// listCell is a list for a table cell: comma-separated, "-" when empty.
func listCell(l []string) string {
	if len(l) == 0 {
		return "-"
	}
	return cell(strings.Join(l, ","))
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func newUserShowCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "show NAME", Short: "Show a local user", Args: args(cobra.ExactArgs(1))}
	f := addFormat(cmd)
	cmd.RunE = g.withClient(func(cmd *cobra.Command, c *client.Client, a []string) error {
		u, err := c.UserRead(cmd.Context(), a[0])
		if err != nil {
			return err
		}
		return output(cmd.OutOrStdout(), f, u, userRows(u))
	})
	return cmd
}

func newUserUpdateCmd(g *globals) *cobra.Command {
	var groups []string
	var noGroups bool
	cmd := &cobra.Command{
		Use:   "update NAME (--group G... | --no-groups)",
		Short: "Replace a user's groups",
		Args:  args(cobra.ExactArgs(1)),
	}
	f := addFormat(cmd)
	cmd.Flags().StringArrayVar(&groups, "group", nil, "a group of the user (repeatable); the user leaves the groups not given")
	cmd.Flags().BoolVar(&noGroups, "no-groups", false, "remove the user from all groups")
	cmd.RunE = func(cmd *cobra.Command, a []string) error {
		switch {
		case len(groups) > 0 && noGroups:
			return usagef("give either --group or --no-groups, not both")
		case len(groups) == 0 && !noGroups:
			return usagef("give --group G (repeatable) to set the user's groups, or --no-groups to remove it from all")
		}
		c, err := g.client(cmd)
		if err != nil {
			return err
		}
		u, err := c.UserUpdate(cmd.Context(), a[0], groups)
		if err != nil {
			return err
		}
		return output(cmd.OutOrStdout(), f, u, userRows(u))
	}
	return cmd
}

// newUserActionCmd builds "warden user VERB NAME" for a call that answers
// nothing; done is printed with the name.
func newUserActionCmd(g *globals, verb, short, done string, call func(*client.Client, context.Context, string) error) *cobra.Command {
	return &cobra.Command{
		Use:   verb + " NAME",
		Short: short,
		Args:  args(cobra.ExactArgs(1)),
		RunE: g.withClient(func(cmd *cobra.Command, c *client.Client, a []string) error {
			if err := call(c, cmd.Context(), a[0]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), done, a[0])
			return nil
		}),
	}
}

// ownUser returns the user the Client's token belongs to, from lookup-self
// (which builtin/user-self grants every user on their own token, a
// session limited to enrolling a second factor included).
func ownUser(ctx context.Context, c *client.Client) (string, error) {
	t, err := c.TokenLookupSelf(ctx)
	if err != nil {
		return "", fmt.Errorf("find your user name: %w", err)
	}
	if t.User == "" {
		return "", errors.New("this token belongs to no user: log in as the user first (warden login)")
	}
	return t.User, nil
}

func newUserPasswdCmd(g *globals) *cobra.Command {
	var fromStdin bool
	cmd := &cobra.Command{
		Use:   "passwd [NAME] [--password-stdin]",
		Short: "Change your password, or set another user's",
		Long: `Change the password of NAME, by default your own user (the token's). Changing
your own asks for the current password first. At a terminal the passwords are
asked for without echo, the new one twice; with --password-stdin stdin holds
the new password on its first line, or, for your own, the current password on
the first line and the new one on the second.`,
		Args: args(cobra.MaximumNArgs(1)),
	}
	cmd.Flags().BoolVar(&fromStdin, "password-stdin", false, "read the passwords from stdin, one a line")
	cmd.RunE = func(cmd *cobra.Command, a []string) error {
		p := g.prompter(cmd)
		if !fromStdin && !p.tty {
			return usagef("no password: give --password-stdin, or run in a terminal to be asked")
		}
		c, err := g.client(cmd)
		if err != nil {
			return err
		}
		me, err := ownUser(cmd.Context(), c)
		name := me
		if len(a) == 1 {
			name = a[0]
		} else if err != nil {
			return fmt.Errorf("%w (or give the NAME whose password to set)", err)
		}
		var current string
		if name == me {
			if fromStdin {
				current, err = p.line()
			} else {
				current, err = p.secret("Current password: ")
			}
			if err != nil {
				return fmt.Errorf("current password: %w", err)
			}
			if current == "" {
				return usagef("current password: empty")
			}
		}
		pw, err := p.newPassword(fromStdin, "New password for "+name)
		if err != nil {
			return err
		}
		if err := c.UserSetPassword(cmd.Context(), name, pw, current); err != nil {
			return err
		}
		fmt.Fprintf(cmd.OutOrStdout(), "Success! Set the password of user %s.\n", name)
		return nil
	}
	return cmd
}

func newTOTPEnrollCmd(g *globals) *cobra.Command {
	var code string
	cmd := &cobra.Command{
		Use:   "totp [--code C]",
		Short: "Enroll an authenticator app (TOTP) as your second factor",
		Long: `Enroll an authenticator app as the second factor of your own user. Without
--code: start an enrollment (a new secret; one started before is replaced)
and print the otpauth:// URI, a QR code of it and the base32 secret for the
app; then take the first code the app shows, asked for at a terminal or the
next line of stdin. With no code there (stdin at its end), the enrollment
stays pending: add it to the app, then confirm it with
"warden user mfa enroll totp --code C", which starts nothing new.
Confirming prints ten recovery codes, shown only once. With --format json
the enrollment and the recovery codes are printed as JSON objects.`,
		Args: args(cobra.NoArgs),
	}
	f := addFormat(cmd)
	cmd.Flags().StringVar(&code, "code", "", "confirm the pending enrollment with the app's first code")
	cmd.RunE = g.withClient(func(cmd *cobra.Command, c *client.Client, _ []string) error {
		ctx, w := cmd.Context(), cmd.OutOrStdout()
		if cmd.Flags().Changed("code") && strings.TrimSpace(code) == "" {
			return usagef("--code: empty")
		}
		me, err := ownUser(ctx, c)
		if err != nil {
			return err
		}
		if code == "" {
			en, err := c.TOTPEnroll(ctx, me)
			if err != nil {
				return err
			}
			if err := printTOTPEnrollment(w, f, en); err != nil {
				return err
			}
			p := g.prompter(cmd)
			code, err = p.prompt("Code from the app: ")
			if errors.Is(err, ErrNoInput) && !p.tty {
				fmt.Fprintln(cmd.ErrOrStderr(), "Add the account to your authenticator app, then confirm it with the code the app shows: "+
					"warden user mfa enroll totp --code CODE")
				return nil
			}
			if err != nil {
				return fmt.Errorf("the first code from the app: %w", err)
			}
			if strings.TrimSpace(code) == "" {
				return usagef("the first code from the app: empty (confirm with warden user mfa enroll totp --code CODE)")
			}
		}
		codes, err := c.TOTPConfirm(ctx, me, strings.TrimSpace(code))
		if err != nil {
			return fmt.Errorf("confirm the app's code: %w", err)
		}
		return printRecoveryCodes(w, f, codes, "")
	})
	return cmd
}

// printTOTPEnrollment shows a new TOTP secret: the URI, its QR code and the
// secret (or the enrollment as JSON).
func printTOTPEnrollment(w io.Writer, f *format, en client.TOTPEnrollment) error {
	if *f == "json" {
		return writeJSON(w, en)
	}
	qr, err := qrText(en.URI)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "Add this account to your authenticator app: scan the QR code, or enter the URI or the secret.\n\n%s\n", qr)
	if err := writeTable(w, []row{{"URI", en.URI}, {"Secret", en.Secret}}); err != nil {
		return err
	}
	_, err = fmt.Fprintln(w)
	return err
}

// printRecoveryCodes prints new recovery codes, once, with a warning to
// keep them.
func printRecoveryCodes(w io.Writer, f *format, codes []string, note string) error {
	if codes == nil {
		codes = []string{}
	}
	if *f == "json" {
		return writeJSON(w, map[string][]string{"recovery_codes": codes})
	}
	fmt.Fprintf(w, "Recovery codes: each logs you in once in place of a code from the app.\n"+
		"Store them somewhere safe now (a password manager, or on paper): they are not shown again.%s\n\n", note)
	for _, c := range codes {
		fmt.Fprintf(w, "    %s\n", c)
	}
	return nil
}

func newRecoveryCodesCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "recovery-codes",
		Short: "Replace your recovery codes with ten new ones",
		Args:  args(cobra.NoArgs),
	}
	f := addFormat(cmd)
	cmd.RunE = g.withClient(func(cmd *cobra.Command, c *client.Client, _ []string) error {
		me, err := ownUser(cmd.Context(), c)
		if err != nil {
			return err
		}
		codes, err := c.RecoveryCodes(cmd.Context(), me)
		if err != nil {
			return err
		}
		return printRecoveryCodes(cmd.OutOrStdout(), f, codes, "\nThe previous codes no longer work.")
	})
	return cmd
}

func newMFAResetCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "reset NAME",
		Short: "Remove every second factor and recovery code of a user (who lost them)",
		Args:  args(cobra.ExactArgs(1)),
		RunE: g.withClient(func(cmd *cobra.Command, c *client.Client, a []string) error {
			if err := c.UserMFAReset(cmd.Context(), a[0]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Success! Removed the second factors and recovery codes of user %s; "+
				"they can enroll again after their next login.\n", a[0])
			return nil
		}),
	}
}

// qrText draws the QR code of text for a terminal, two module rows a line
// with the half blocks ▀ ▄ █ and spaces, and the 4-module quiet zone the
// standard asks for around it. Light modules are drawn and dark ones left
// blank, for the usual light-on-dark terminal (on a dark-on-light one the
// code shows inverted, which most scanners read too).
func qrText(text string) (string, error) {
	q, err := qrcode.New(text, qrcode.Medium)
	if err != nil {
		return "", fmt.Errorf("QR code: %w", err)
	}
	bm := q.Bitmap() // bm[y][x]: dark; with the quiet zone
	light := func(y, x int) bool { return y < len(bm) && !bm[y][x] }
	var b strings.Builder
	for y := 0; y < len(bm); y += 2 {
		for x := range bm[y] {
			switch top, bottom := light(y, x), light(y+1, x); {
			case top && bottom:
				b.WriteRune('█')
			case top:
				b.WriteRune('▀')
			case bottom:
				b.WriteRune('▄')
			default:
				b.WriteByte(' ')
			}
		}
		b.WriteByte('\n')
	}
	return b.String(), nil
}
