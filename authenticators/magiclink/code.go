package magiclink

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/big"
	"strconv"
	"strings"
)

// randomDigits is n decimal digits from crypto/rand, uniformly.
func randomDigits(n int) (string, error) {
	max := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(n)), nil)
	v, err := rand.Int(rand.Reader, max)
	if err != nil {
		return "", fmt.Errorf("code: %w", err)
	}
	return fmt.Sprintf("%0*s", n, v.String()), nil
}

// codeHash is how a code is stored: keyed (a six-digit code's plain hash
// is reversed in a second) and bound to its link's token hash, so a code
// is only ever checked against the link it was mailed with.
func (s *Service) codeHash(tokenHash, code string) string {
	m := hmac.New(sha256.New, s.CodeKey)
	m.Write([]byte(tokenHash))
	m.Write([]byte{0})
	m.Write([]byte(code))
	return hex.EncodeToString(m.Sum(nil))
}

// CodeMatches compares a typed code with a link's in constant time.
func (s *Service) CodeMatches(l *Link, code string) bool {
	return l.CodeHash != "" && hmac.Equal([]byte(s.codeHash(l.TokenHash, code)), []byte(l.CodeHash))
}

// NormalizeCode reads a typed code: spaces and dashes (as mail clients
// and people group digits) are dropped; it reports whether what is left
// is n digits.
func NormalizeCode(typed string, n int) (string, bool) {
	code := strings.Map(func(r rune) rune {
		if r == ' ' || r == '-' || r == '\u00a0' {
			return -1
		}
		return r
	}, strings.TrimSpace(typed))
	if len(code) != n {
		return code, false
	}
	for _, r := range code {
		if r < '0' || r > '9' {
			return code, false
		}
	}
	return code, true
}

// NewMatchNumber is the number a login's page shows for number matching:
// two digits, 10 to 99.
func NewMatchNumber() (int, error) {
	v, err := rand.Int(rand.Reader, big.NewInt(90))
	if err != nil {
		return 0, fmt.Errorf("match number: %w", err)
	}
	return 10 + int(v.Int64()), nil
}

// matchChoices is right and two other two-digit numbers in random order,
// chosen once and stored, so reloading the approval page never narrows
// the choice.
func matchChoices(right int) (string, error) {
	choices := []int{right}
	for len(choices) < 3 {
		n, err := NewMatchNumber()
		if err != nil {
			return "", err
		}
		if n != choices[0] && (len(choices) < 2 || n != choices[1]) {
			choices = append(choices, n)
		}
	}
	for i := len(choices) - 1; i > 0; i-- { // Fisher-Yates with crypto/rand
		j, err := rand.Int(rand.Reader, big.NewInt(int64(i+1)))
		if err != nil {
			return "", fmt.Errorf("match choices: %w", err)
		}
		choices[i], choices[j.Int64()] = choices[j.Int64()], choices[i]
	}
	out := make([]string, len(choices))
	for i, c := range choices {
		out[i] = strconv.Itoa(c)
	}
	return strings.Join(out, ","), nil
}

// Choices are the numbers a link's approval page offers.
func (l *Link) Choices() []int {
	var out []int
	for _, f := range strings.Split(l.MatchChoices, ",") {
		if n, err := strconv.Atoi(f); err == nil {
			out = append(out, n)
		}
	}
	return out
}
