package flows

import (
	"errors"
	"net/mail"
	"strings"
	"unicode"

	"golang.org/x/text/unicode/norm"
)

// ErrInvalidEmail is returned by ParseEmail; its text is safe to show users.
var ErrInvalidEmail = errors.New("enter a valid email address, like name@example.com")

// ParseEmail validates what a person typed and returns the canonical address.
// Control characters (CR/LF header injection) and display-name forms are
// refused; the result is NFC-normalised and lower-cased, because SQLite's
// case folding is ASCII-only and look-alikes must not match another account.
func ParseEmail(input string) (string, error) {
	s := strings.TrimSpace(input)
	if s == "" || len(s) > 254 {
		return "", ErrInvalidEmail
	}
	for _, r := range s {
		if unicode.IsControl(r) || unicode.IsSpace(r) {
			return "", ErrInvalidEmail
		}
	}
	addr, err := mail.ParseAddress(s)
	if err != nil || addr.Name != "" || addr.Address != s {
		return "", ErrInvalidEmail
	}
	at := strings.LastIndexByte(s, '@')
	if at < 1 || at == len(s)-1 || !strings.Contains(s[at+1:], ".") {
		return "", ErrInvalidEmail
	}
	return canonicalEmail(s), nil
}

func canonicalEmail(s string) string {
	return strings.ToLower(norm.NFC.String(strings.TrimSpace(s)))
}
