package flows

import (
	"fmt"
	"reflect"
)

// Decode copies an execution's option values into the fields of the struct
// dst points to, by their `option:"name"` tags, once, when the authenticator
// is built. A tag naming no option, or a field of the wrong type, is an
// error at start-up: a typo cannot silently read zero on every request.
func (c Config) Decode(dst any) error {
	v := reflect.ValueOf(dst)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
		return fmt.Errorf("decode options: want a pointer to a struct, got %T", dst)
	}
	s := v.Elem()
	for i := 0; i < s.NumField(); i++ {
		f := s.Type().Field(i)
		name, ok := f.Tag.Lookup("option")
		if !ok {
			continue
		}
		if !f.IsExported() {
			return fmt.Errorf("decode options: field %s.%s must be exported", s.Type(), f.Name)
		}
		val, ok := c.Values[name]
		if !ok {
			return fmt.Errorf("decode options: %s.%s names option %q, which the schema does not have", s.Type(), f.Name, name)
		}
		rv := reflect.ValueOf(val)
		if !rv.IsValid() || !rv.Type().AssignableTo(f.Type) {
			return fmt.Errorf("decode options: option %q is %T, field %s.%s is %s", name, val, s.Type(), f.Name, f.Type)
		}
		s.Field(i).Set(rv)
	}
	return nil
}
