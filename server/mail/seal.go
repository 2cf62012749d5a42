package mail

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// Sealer encrypts mail bodies at rest: a queued sign-in mail holds a live
// link, and the database must never hold a usable link token in clear.
// AES-256-GCM from the standard library; the key is derived from the realm
// secret (keep server.cookieSecret in the environment to keep the key out of
// the database too).
type Sealer struct{ aead cipher.AEAD }

const sealedPrefix = "sealed:v1:"

// NewSealer takes a 32-byte key.
func NewSealer(key []byte) (*Sealer, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("mail sealer: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("mail sealer: %w", err)
	}
	return &Sealer{aead: aead}, nil
}

// Seal encrypts s.
func (s *Sealer) Seal(plain string) string {
	if plain == "" {
		return ""
	}
	nonce := make([]byte, s.aead.NonceSize())
	_, _ = rand.Read(nonce)
	ct := s.aead.Seal(nonce, nonce, []byte(plain), []byte(sealedPrefix))
	return sealedPrefix + base64.RawStdEncoding.EncodeToString(ct)
}

// Open decrypts what Seal produced; other text is returned as is.
func (s *Sealer) Open(sealed string) (string, error) {
	b64, ok := strings.CutPrefix(sealed, sealedPrefix)
	if !ok {
		return sealed, nil
	}
	raw, err := base64.RawStdEncoding.DecodeString(b64)
	if err != nil || len(raw) < s.aead.NonceSize() {
		return "", errors.New("sealed mail body is corrupt")
	}
	pt, err := s.aead.Open(nil, raw[:s.aead.NonceSize()], raw[s.aead.NonceSize():], []byte(sealedPrefix))
	if err != nil {
		return "", errors.New("sealed mail body does not open with this realm's key")
	}
	return string(pt), nil
}
