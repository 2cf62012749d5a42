package mail

import (
	"bytes"
	"strings"
	"testing"
)

func TestSealerRoundTripAndWrongKey(t *testing.T) {
	a, _ := NewSealer(bytes.Repeat([]byte{1}, 32))
	b, _ := NewSealer(bytes.Repeat([]byte{2}, 32))
	sealed := a.Seal("https://id.example/link?token=secret")
	if strings.Contains(sealed, "secret") {
		t.Fatal("sealed text contains the plaintext")
	}
	if got, err := a.Open(sealed); err != nil || got != "https://id.example/link?token=secret" {
		t.Fatalf("Open = %q, %v", got, err)
	}
	if _, err := b.Open(sealed); err == nil {
		t.Fatal("opened with another realm's key")
	}
	if got, _ := a.Open("plain"); got != "plain" {
		t.Fatal("unsealed text must pass through")
	}
}

func TestBackoffGrowsAndCaps(t *testing.T) {
	if Backoff(0) >= Backoff(3) || Backoff(20) != Backoff(9) || Backoff(30).Minutes() != 5 {
		t.Fatalf("backoff %v %v %v", Backoff(0), Backoff(3), Backoff(30))
	}
}
