package magiclink

import (
	"slices"
	"testing"
)

func TestNormalizeCode(t *testing.T) {
	for _, c := range []struct {
		in   string
		n    int
		want string
		ok   bool
	}{
		{"123456", 6, "123456", true},
		{" 123 456 ", 6, "123456", true},
		{"123-456", 6, "123456", true},
		{"12345", 6, "12345", false},
		{"12345a", 6, "12345a", false},
		{"１２３４５６", 6, "１２３４５６", false}, // fullwidth digits are not digits here
		{"12345678", 8, "12345678", true},
	} {
		got, ok := NormalizeCode(c.in, c.n)
		if got != c.want || ok != c.ok {
			t.Errorf("NormalizeCode(%q, %d) = %q, %v", c.in, c.n, got, ok)
		}
	}
}

// A code matches only its own link, and only under the realm's key.
func TestCodeIsBoundToItsLinkAndKey(t *testing.T) {
	s := &Service{CodeKey: []byte("key one, 32 bytes of key materia")}
	l := &Link{TokenHash: HashToken("token-a")}
	l.CodeHash = s.codeHash(l.TokenHash, "123456")
	if !s.CodeMatches(l, "123456") || s.CodeMatches(l, "123457") {
		t.Fatal("the code does not match itself only")
	}
	other := &Link{TokenHash: HashToken("token-b"), CodeHash: l.CodeHash}
	if s.CodeMatches(other, "123456") {
		t.Fatal("a code matched another link")
	}
	if (&Service{CodeKey: []byte("another key")}).CodeMatches(l, "123456") {
		t.Fatal("a code matched under another key")
	}
	if s.CodeMatches(&Link{TokenHash: l.TokenHash}, "") {
		t.Fatal("a link without a code matched the empty code")
	}
}

func TestRandomCodesAndChoices(t *testing.T) {
	for n := 6; n <= 8; n++ {
		c, err := randomDigits(n)
		if _, ok := NormalizeCode(c, n); err != nil || !ok {
			t.Fatalf("randomDigits(%d) = %q, %v", n, c, err)
		}
	}
	for range 200 {
		right, err := NewMatchNumber()
		if err != nil || right < 10 || right > 99 {
			t.Fatalf("match number %d, %v", right, err)
		}
		ch, err := matchChoices(right)
		if err != nil {
			t.Fatal(err)
		}
		l := &Link{MatchChoices: ch}
		got := l.Choices()
		sorted := slices.Sorted(slices.Values(got))
		if len(got) != 3 || !slices.Contains(got, right) || len(slices.Compact(sorted)) != 3 {
			t.Fatalf("choices %q for %d", ch, right)
		}
	}
}
