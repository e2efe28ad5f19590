package users

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/warden-sec/warden/internal/errs"
)

// EnrollTOTP starts a TOTP enrollment: it stores a new secret as the
// user's PendingTOTP (replacing a pending one; a confirmed factor stays
// until ConfirmTOTP replaces it) and returns it, as an otpauth:// URI
// (issuer "Warden", the user name as the account, SHA-1, 6 digits, 30 s)
// and in base32, to show the user once.
func (s *Service) EnrollTOTP(ctx context.Context, name string) (uri string, secret string, err error) {
	name, err = canonical("name", name)
	if err != nil {
		return "", "", err
	}
	key, err := totp.Generate(totp.GenerateOpts{Issuer: totpIssuer, AccountName: name, Period: totpPeriod,
		SecretSize: totpSecret, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1, Rand: s.rand})
	if err != nil {
		return "", "", errs.Wrap(errs.Internal, err, "totp: generate")
	}
	_, err = s.update(ctx, name, func(u *User, now time.Time) error {
		u.PendingTOTP = &TOTP{Secret: key.Secret(), Created: now}
		return nil
	})
	if err != nil {
		return "", "", err
	}
	return key.URL(), key.Secret(), nil
}

// ConfirmTOTP completes an enrollment with the first code of the pending
// secret: the secret becomes the user's TOTP factor (the code's step its
// LastStep, so the code cannot log in), and the user gets RecoveryCodes
// new recovery codes, replacing any left, returned here and never again.
// errs.Invalid if nothing is pending or the code is wrong.
func (s *Service) ConfirmTOTP(ctx context.Context, name, code string) (recovery []string, err error) {
	shown, hashes, err := newRecoveryCodes(s.rand, recoveryCodes)
	if err != nil {
		return nil, err
	}
	_, err = s.updateCut(ctx, name, func(u *User, now time.Time) error {
		p := u.PendingTOTP
		if p == nil {
			return errs.E(errs.Invalid, "totp: nothing to confirm; enroll first")
		}
		step, ok := ValidateTOTP(p.Secret, code, now, 0)
		if !ok {
			return errs.E(errs.Invalid, "code: wrong or expired; enter the current code of the new entry")
		}
		u.TOTP = &TOTP{Secret: p.Secret, LastStep: step, Created: now}
		u.PendingTOTP = nil
		u.RecoveryCodes = hashes
		return nil
	})
	if err != nil {
		return nil, err
	}
	return shown, nil
}

// NewRecoveryCodes replaces the user's recovery codes with RecoveryCodes
// new ones, returned here and never again. The user must have a second
// factor (errs.Invalid otherwise): a recovery code stands in for one.
func (s *Service) NewRecoveryCodes(ctx context.Context, name string) ([]string, error) {
	shown, hashes, err := newRecoveryCodes(s.rand, recoveryCodes)
	if err != nil {
		return nil, err
	}
	_, err = s.update(ctx, name, func(u *User, _ time.Time) error {
		if !u.HasMFA() {
			return errs.E(errs.Invalid, "recovery codes: enroll a second factor first")
		}
		u.RecoveryCodes = hashes
		return nil
	})
	if err != nil {
		return nil, err
	}
	return shown, nil
}

// checkPasskeyName: 1 to 64 characters, printable, no surrounding space.
func checkPasskeyName(n string) error {
	switch {
	case n == "" || utf8.RuneCountInString(n) > maxPasskeyName:
		return errs.E(errs.Invalid, "passkey name: must be 1 to %d characters", maxPasskeyName)
	case !utf8.ValidString(n):
		return errs.E(errs.Invalid, "passkey name: not valid UTF-8")
	case strings.TrimSpace(n) != n:
		return errs.E(errs.Invalid, "passkey name: must not start or end with a space")
	}
	for _, r := range n {
		if !unicode.IsPrint(r) && r != ' ' {
			return errs.E(errs.Invalid, "passkey name: control and invisible characters are not allowed")
		}
	}
	return nil
}

// AddPasskey registers a passkey (after internal/passkey's registration
// ceremony verified it): id is the credential ID, cred the credential as
// internal/passkey returns it. errs.Conflict if the user has a passkey of
// that name or ID already; errs.Invalid beyond 32 passkeys.
func (s *Service) AddPasskey(ctx context.Context, name, passkeyName string, id []byte, cred json.RawMessage) error {
	if err := checkPasskeyName(passkeyName); err != nil {
		return err
	}
	if len(id) == 0 || len(id) > maxCredentialID {
		return errs.E(errs.Invalid, "credential id: must be 1 to %d bytes", maxCredentialID)
	}
	if len(cred) > maxCredentialBytes || !json.Valid(cred) {
		return errs.E(errs.Invalid, "credential: not a JSON credential of at most %d bytes", maxCredentialBytes)
	}
	pid := passkeyID(id)
	_, err := s.updateCut(ctx, name, func(u *User, now time.Time) error {
		for _, p := range u.Passkeys {
			if p.Name == passkeyName {
				return errs.E(errs.Conflict, "passkey %q exists already", passkeyName)
			}
			if p.ID == pid {
				return errs.E(errs.Conflict, "this passkey is registered already (as %q)", p.Name)
			}
		}
		if len(u.Passkeys) >= maxPasskeys {
			return errs.E(errs.Invalid, "passkeys: at most %d; remove one first", maxPasskeys)
		}
		u.Passkeys = append(u.Passkeys, Passkey{Name: passkeyName, ID: pid, Credential: slices.Clone(cred), Created: now})
		return nil
	})
	return err
}

// RemovePasskey removes the user's passkey of that name. errs.NotFound if
// there is none. Removing the last factor leaves the recovery codes, which
// log in only while a factor is enrolled.
func (s *Service) RemovePasskey(ctx context.Context, name, passkeyName string) error {
	_, err := s.updateCut(ctx, name, func(u *User, _ time.Time) error {
		i := slices.IndexFunc(u.Passkeys, func(p Passkey) bool { return p.Name == passkeyName })
		if i < 0 {
			return errs.E(errs.NotFound, "passkey %q not found", passkeyName)
		}
		u.Passkeys = slices.Delete(u.Passkeys, i, i+1)
		return nil
	})
	return err
}
