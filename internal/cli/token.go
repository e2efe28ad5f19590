package cli

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/warden-sec/warden/pkg/client"
)

func newTokenCmd(g *globals) *cobra.Command {
	return newGroupCmd("token", "Create, look up, renew and revoke tokens",
		newTokenCreateCmd(g), newTokenLookupCmd(g), newTokenRenewCmd(g), newTokenRevokeCmd(g))
}

func tokenRows(t client.Token) []row {
	var rows []row
	if t.Token != "" {
		rows = append(rows, row{"Token", t.Token})
	}
	return append(rows,
		row{"Accessor", t.Accessor},
		row{"Display Name", t.DisplayName},
		row{"Policies", t.Policies},
		row{"Parent Accessor", t.ParentAccessor},
		row{"Created Time", t.CreatedTime},
		row{"Expire Time", t.ExpireTime},
		row{"TTL", t.TTL},
		row{"Root", t.Root},
		row{"Principal", t.Principal},
		row{"Groups", t.Groups},
	)
}

func newTokenCreateCmd(g *globals) *cobra.Command {
	var req client.TokenCreateRequest
	cmd := &cobra.Command{
		Use:   "create [--ttl D] [--display-name S] [--user NAME [--group G]...]",
		Short: "Create a child of the current token and print it",
		Args:  args(cobra.NoArgs),
	}
	f := addFormat(cmd)
	cmd.Flags().StringVar(&req.TTL, "ttl", "", "lifetime as a Go duration, e.g. 30m or 1h (server default 768h)")
	cmd.Flags().StringVar(&req.DisplayName, "display-name", "", "a name for the token, shown in lookups and logs")
	cmd.Flags().StringVar(&req.User, "user", "", `the new token's principal, User::"NAME" (default: the caller's)`)
	cmd.Flags().StringArrayVar(&req.Groups, "group", nil, `a group of --user, Group::"G" (repeatable)`)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if req.TTL != "" {
			if d, err := time.ParseDuration(req.TTL); err != nil || d <= 0 {
				return usagef("--ttl: must be a positive Go duration such as 30m or 1h, got %q", req.TTL)
			}
		}
		c, err := g.client(cmd)
		if err != nil {
			return err
		}
		t, err := c.TokenCreate(cmd.Context(), req)
		if err != nil {
			return err
		}
		return output(cmd.OutOrStdout(), f, t, tokenRows(t))
	}
	return cmd
}

func newTokenLookupCmd(g *globals) *cobra.Command {
	var accessor string
	cmd := &cobra.Command{
		Use:   "lookup [TOKEN] [--accessor A]",
		Short: "Describe a token (the current one when neither TOKEN nor --accessor is given)",
		Args:  args(cobra.MaximumNArgs(1)),
	}
	f := addFormat(cmd)
	cmd.Flags().StringVar(&accessor, "accessor", "", "look the token up by its accessor")
	cmd.RunE = func(cmd *cobra.Command, a []string) error {
		if len(a) == 1 && accessor != "" {
			return usagef("give either TOKEN or --accessor, not both")
		}
		c, err := g.client(cmd)
		if err != nil {
			return err
		}
		var t client.Token
		switch {
		case accessor != "":
			t, err = c.TokenLookupAccessor(cmd.Context(), accessor)
		case len(a) == 1:
			t, err = c.TokenLookup(cmd.Context(), a[0])
		default:
			t, err = c.TokenLookupSelf(cmd.Context())
		}
		if err != nil {
			return err
		}
		return output(cmd.OutOrStdout(), f, t, tokenRows(t))
	}
	return cmd
}

func newTokenRevokeCmd(g *globals) *cobra.Command {
	var accessor string
	cmd := &cobra.Command{
		Use:   "revoke (TOKEN | --accessor A)",
		Short: "Revoke a token and all its children",
		Args:  args(cobra.MaximumNArgs(1)),
	}
	cmd.Flags().StringVar(&accessor, "accessor", "", "revoke the token with this accessor")
	cmd.RunE = func(cmd *cobra.Command, a []string) error {
		switch {
		case len(a) == 1 && accessor != "":
			return usagef("give either TOKEN or --accessor, not both")
		case len(a) == 0 && accessor == "":
			return usagef("give the TOKEN to revoke or --accessor")
		}
		c, err := g.client(cmd)
		if err != nil {
			return err
		}
		if accessor != "" {
			err = c.TokenRevokeAccessor(cmd.Context(), accessor)
		} else {
			err = c.TokenRevoke(cmd.Context(), a[0])
		}
		if err != nil {
			return err
		}
		fmt.Fprintln(cmd.OutOrStdout(), "Success! Revoked the token and its children.")
		return nil
	}
	return cmd
}
