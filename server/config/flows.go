package config

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"latchkey/flows"
)

// validateFlows resolves realm.yaml's flows into flows.Flow values, checking
// every execution and every authenticator option against its schema.
func (d *decoder) validateFlows(c *Config, opts Options) {
	c.FlowDefs = map[string]*flows.Flow{}
	if len(c.Flows) == 0 {
		d.failAt("flows", "at least one flow is needed")
	}
	for name, execs := range c.Flows {
		c.FlowDefs[name] = &flows.Flow{Name: name, Executions: d.executions(execs, "flows."+name, opts)}
	}
	if _, ok := c.Bindings["browser"]; !ok {
		d.failAt("bindings", "a browser binding is required, like `browser: %s`", firstKey(c.Flows))
	}
	for purpose, name := range c.Bindings {
		switch purpose {
		case "browser", "directGrant", "registration", "resetCredentials":
		default:
			d.failAt("bindings."+purpose, "unknown binding (known: browser, directGrant, registration, resetCredentials)")
		}
		if _, ok := c.Flows[name]; !ok {
			d.failAt("bindings."+purpose, "names unknown flow %q", name)
		}
	}
}

func firstKey[V any](m map[string]V) string {
	for k := range m {
		return k
	}
	return "my-flow"
}

func (d *decoder) executions(defs []ExecutionDef, path string, opts Options) []*flows.Execution {
	var out []*flows.Execution
	for i, def := range defs {
		p := fmt.Sprintf("%s[%d]", path, i)
		req := flows.Requirement(strings.ToUpper(def.Requirement))
		if def.Requirement == "" {
			req = flows.Required
		}
		if !req.Valid() {
			d.failAt(p+".requirement", "must be REQUIRED, ALTERNATIVE, CONDITIONAL or DISABLED")
		}
		e := &flows.Execution{Requirement: req}
		switch {
		case def.Authenticator != "" && def.Flow != "":
			d.failAt(p, "give either authenticator or flow, not both")
		case def.Authenticator != "":
			if len(def.Executions) > 0 {
				d.failAt(p+".executions", "only a sub-flow (flow:) has executions")
			}
			if req == flows.Conditional {
				d.failAt(p+".requirement", "CONDITIONAL applies to sub-flows only")
			}
			schema, ok := opts(def.Authenticator)
			if !ok {
				d.failAt(p+".authenticator", "unknown authenticator %q", def.Authenticator)
				break
			}
			e.Authenticator = def.Authenticator
			e.Config = d.options(def.Config, schema, p+".config")
		case def.Flow != "":
			if len(def.Executions) == 0 {
				d.failAt(p+".executions", "a sub-flow needs at least one execution")
			}
			if def.Config.Kind != 0 {
				d.failAt(p+".config", "a sub-flow has no config; configure its executions")
			}
			e.Flow = &flows.Flow{Name: def.Flow, Executions: d.executions(def.Executions, p+".executions", opts)}
		default:
			d.failAt(p, "needs an authenticator or a flow")
		}
		out = append(out, e)
	}
	return out
}

// options decodes an execution's config mapping (alias plus options) against
// the authenticator's schema: unknown options and wrong types are errors, and
// missing options take their defaults.
func (d *decoder) options(n yaml.Node, schema []flows.Option, path string) flows.Config {
	cfg := flows.Config{Values: map[string]any{}}
	for _, o := range schema {
		cfg.Values[o.Name] = o.Default
	}
	if n.Kind == 0 || (n.Kind == yaml.ScalarNode && n.Tag == "!!null") {
		return cfg
	}
	if n.Kind != yaml.MappingNode {
		d.fail(n.Line, path, "must be a mapping")
		return cfg
	}
	byName := map[string]flows.Option{}
	var names []string
	for _, o := range schema {
		byName[o.Name] = o
		names = append(names, o.Name)
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		p := path + "." + k.Value
		d.lines[p] = k.Line
		if k.Value == "alias" {
			cfg.Alias = v.Value
			continue
		}
		o, ok := byName[k.Value]
		if !ok {
			known := "none"
			if len(names) > 0 {
				known = strings.Join(names, ", ")
			}
			d.fail(k.Line, p, "unknown option (known options: alias, %s)", known)
			continue
		}
		val, err := optionValue(v, o.Type)
		if err != nil {
			d.fail(v.Line, p, "%v", err)
			continue
		}
		if o.Check != nil {
			if err := o.Check(val); err != nil {
				d.fail(v.Line, p, "%v", err)
				continue
			}
		}
		cfg.Values[o.Name] = val
	}
	for _, o := range schema {
		if dur, ok := cfg.Values[o.Name].(time.Duration); ok && o.WithinAuthSession && d.authSessionTTL > 0 && dur > d.authSessionTTL {
			p := path + "." + o.Name
			d.failAt(p, "%s is longer than sessions.authSessionTTL (%s): it would outlive the login it belongs to; shorten it or raise sessions.authSessionTTL", dur, d.authSessionTTL)
		}
	}
	return cfg
}

func optionValue(n *yaml.Node, t flows.OptionType) (any, error) {
	if t == flows.List {
		if n.Kind != yaml.SequenceNode {
			return nil, fmt.Errorf("must be a list")
		}
		var out []string
		for _, c := range n.Content {
			out = append(out, c.Value)
		}
		return out, nil
	}
	if n.Kind != yaml.ScalarNode {
		return nil, fmt.Errorf("must be a single %s value", t)
	}
	switch t {
	case flows.Bool:
		b, err := strconv.ParseBool(n.Value)
		if err != nil {
			return nil, fmt.Errorf("must be true or false, not %q", n.Value)
		}
		return b, nil
	case flows.Int:
		i, err := strconv.Atoi(n.Value)
		if err != nil {
			return nil, fmt.Errorf("must be a whole number, not %q", n.Value)
		}
		return i, nil
	case flows.Duration:
		return ParseDuration(n.Value)
	case flows.String:
		return n.Value, nil
	}
	return nil, fmt.Errorf("option type %s is not supported", t)
}
