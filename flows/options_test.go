package flows

import (
	"testing"
	"time"
)

func TestDecodeOptions(t *testing.T) {
	cfg := Config{Values: map[string]any{"linkTTL": 15 * time.Minute, "maxPerIP": 30, "force": true}}
	var ok struct {
		TTL   time.Duration `option:"linkTTL"`
		Max   int           `option:"maxPerIP"`
		Force bool          `option:"force"`
		Other string        // no tag: left alone
	}
	if err := cfg.Decode(&ok); err != nil || ok.TTL != 15*time.Minute || ok.Max != 30 || !ok.Force {
		t.Fatalf("decode: %+v, %v", ok, err)
	}
	var typo struct {
		TTL time.Duration `option:"linkTtl"`
	}
	if err := cfg.Decode(&typo); err == nil {
		t.Fatal("a tag naming no option decoded")
	}
	var wrongType struct {
		Max string `option:"maxPerIP"`
	}
	if err := cfg.Decode(&wrongType); err == nil {
		t.Fatal("an int option decoded into a string")
	}
	var unexported struct {
		max int `option:"maxPerIP"`
	}
	if err := cfg.Decode(&unexported); err == nil {
		t.Fatalf("an unexported field decoded: %d", unexported.max)
	}
}
