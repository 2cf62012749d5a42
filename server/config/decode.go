package config

import (
	"fmt"
	"math"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Duration is a time.Duration written as "15m", "720h" or "3d".
type Duration time.Duration

// maxDays keeps a day count from overflowing time.Duration.
const maxDays = int(math.MaxInt64 / int64(24*time.Hour))

// ParseDuration accepts Go durations plus a "d" (24h) suffix.
func ParseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.Atoi(n)
		if err != nil || days < 0 || days > maxDays {
			return 0, fmt.Errorf("invalid duration %q (use 15m, 2h or 3d)", s)
		}
		return time.Duration(days) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("invalid duration %q (use 15m, 2h or 3d)", s)
	}
	return d, nil
}

// D returns the duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// Errors is a list of line-numbered configuration errors.
type Errors []string

func (e Errors) Error() string { return strings.Join(e, "\n") }

// decoder walks a yaml.Node tree into Go values, keeping the line of every
// path so that semantic checks can name it too.
type decoder struct {
	file  string
	lines map[string]int
	errs  Errors
	// authSessionTTL bounds options marked WithinAuthSession.
	authSessionTTL time.Duration
	// uses are the top-level sections the command reads (nil: all): errors
	// elsewhere, unset environment variables included, are not its concern.
	uses []string
}

// unused reports whether path lies in a section the command does not read.
func (d *decoder) unused(path string) bool {
	if d.uses == nil || path == "" {
		return false
	}
	top, _, _ := strings.Cut(path, ".")
	top, _, _ = strings.Cut(top, "[")
	return !slices.Contains(d.uses, top)
}

func (d *decoder) fail(line int, path, format string, args ...any) {
	if d.unused(path) {
		return
	}
	msg := fmt.Sprintf(format, args...)
	if path != "" {
		msg = path + ": " + msg
	}
	d.errs = append(d.errs, fmt.Sprintf("%s:%d: %s", d.file, line, msg))
}

// failAt reports an error at a path recorded during decoding, or at its
// nearest recorded parent.
func (d *decoder) failAt(path, format string, args ...any) {
	d.fail(d.lineOf(path), path, format, args...)
}

func (d *decoder) lineOf(path string) int {
	for p := path; ; {
		if l, ok := d.lines[p]; ok {
			return l
		}
		i := strings.LastIndexAny(p, ".[")
		if i < 0 {
			return d.lines[""]
		}
		p = p[:i]
	}
}

var envRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(:-([^}]*))?\}`)

// expandEnv replaces ${VAR} and ${VAR:-default} in scalar values (never in
// keys, so the structure cannot change). An unset ${VAR} without default is
// an error: a secret silently read as "" would weaken security.
func (d *decoder) expandEnv(n *yaml.Node, path string) {
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			d.expandEnv(c, path)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			d.expandEnv(c, fmt.Sprintf("%s[%d]", path, i))
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			d.expandEnv(n.Content[i+1], join(path, n.Content[i].Value))
		}
	case yaml.ScalarNode:
		if !strings.Contains(n.Value, "${") {
			return
		}
		n.Value = envRef.ReplaceAllStringFunc(n.Value, func(ref string) string {
			m := envRef.FindStringSubmatch(ref)
			if v, ok := os.LookupEnv(m[1]); ok && (v != "" || m[2] == "") {
				return v
			}
			if m[2] != "" {
				return m[3]
			}
			d.fail(n.Line, path, "environment variable %s is not set (write ${%s:-} to allow empty)", m[1], m[1])
			return ""
		})
		// An expanded value is a string, whatever it looks like.
		if n.Tag == "" || n.Tag == "!!null" {
			n.Tag = "!!str"
		}
	}
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

var (
	durationType = reflect.TypeOf(Duration(0))
	nodeType     = reflect.TypeOf(yaml.Node{})
)

// decode stores n into v, reporting unknown keys and type errors with their lines.
func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string) {
	d.lines[path] = n.Line
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if v.Type() == nodeType {
		v.Set(reflect.ValueOf(*n))
		return
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return // keep the default
	}
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		d.decode(n, v.Elem(), path)
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			d.fail(n.Line, path, "must be a mapping")
			return
		}
		fields := map[string]int{}
		var names []string
		for i := 0; i < v.NumField(); i++ {
			tag, _, _ := strings.Cut(v.Type().Field(i).Tag.Get("yaml"), ",")
			if tag != "" && tag != "-" {
				fields[tag] = i
				names = append(names, tag)
			}
		}
		seen := map[string]bool{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			p := join(path, k.Value)
			fi, ok := fields[k.Value]
			if !ok {
				d.fail(k.Line, p, "unknown key (known keys: %s)", strings.Join(names, ", "))
				continue
			}
			if seen[k.Value] {
				d.fail(k.Line, p, "duplicate key")
				continue
			}
			seen[k.Value] = true
			d.decode(val, v.Field(fi), p)
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.fail(n.Line, path, "must be a list")
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, c := range n.Content {
			d.decode(c, s.Index(i), fmt.Sprintf("%s[%d]", path, i))
		}
		v.Set(s)
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			d.fail(n.Line, path, "must be a mapping")
			return
		}
		m := reflect.MakeMap(v.Type())
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			p := join(path, k.Value)
			if m.MapIndex(reflect.ValueOf(k.Value)).IsValid() {
				d.fail(k.Line, p, "duplicate key")
				continue
			}
			e := reflect.New(v.Type().Elem()).Elem()
			d.decode(val, e, p)
			m.SetMapIndex(reflect.ValueOf(k.Value), e)
		}
		v.Set(m)
	default:
		if n.Kind != yaml.ScalarNode {
			d.fail(n.Line, path, "must be a single value")
			return
		}
		d.scalar(n, v, path)
	}
}

func (d *decoder) scalar(n *yaml.Node, v reflect.Value, path string) {
	switch {
	case v.Type() == durationType:
		dur, err := ParseDuration(n.Value)
		if err != nil {
			d.fail(n.Line, path, "%v", err)
			return
		}
		v.SetInt(int64(dur))
	case v.Kind() == reflect.String:
		v.SetString(n.Value)
	case v.Kind() == reflect.Bool:
		b, err := strconv.ParseBool(n.Value)
		if err != nil {
			d.fail(n.Line, path, "must be true or false, not %q", n.Value)
			return
		}
		v.SetBool(b)
	case v.Kind() == reflect.Int:
		i, err := strconv.Atoi(n.Value)
		if err != nil {
			d.fail(n.Line, path, "must be a whole number, not %q", n.Value)
			return
		}
		v.SetInt(int64(i))
	default:
		d.fail(n.Line, path, "unsupported type %s", v.Type())
	}
}
