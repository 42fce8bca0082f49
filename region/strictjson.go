package region

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// maxOverrideSize bounds every data file geoseal reads. The embedded files
// are far smaller; an override larger than this is refused before parsing.
const maxOverrideSize = 1 << 20

// maxJSONDepth bounds nesting; the schemas need 4 levels.
const maxJSONDepth = 16

// decodeStrict decodes one JSON value into v and refuses anything that could
// make a policy silently weaker than its author meant: unknown fields (a
// misspelt "deny_countires" would otherwise be ignored), duplicate keys
// (encoding/json keeps the last one, and matches keys case-insensitively, so
// "Country" and "country" would collide), invalid UTF-8 (silently replaced by
// encoding/json), trailing data, and oversized input.
func decodeStrict(r io.Reader, v any, limit int64) error {
	data, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return err
	}
	if int64(len(data)) > limit {
		return fmt.Errorf("larger than %d bytes", limit)
	}
	if !utf8.Valid(data) {
		return errors.New("not valid UTF-8")
	}
	if err := checkKeys(data); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(data, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("trailing data after the JSON object")
	}
	return nil
}

// jsonError adds a line number to encoding/json's offsets.
func jsonError(data []byte, err error) error {
	var off int64 = -1
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		off = se.Offset
	case errors.As(err, &te):
		off = te.Offset
	}
	if off < 0 || off > int64(len(data)) {
		return err
	}
	line := 1 + bytes.Count(data[:off], []byte("\n"))
	return fmt.Errorf("line %d: %w", line, err)
}

// checkKeys walks the token stream and refuses duplicate object keys
// (compared case-insensitively, as encoding/json matches them) and nesting
// deeper than maxJSONDepth.
func checkKeys(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var stack []*jsonFrame
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return jsonError(data, err)
		}
		var top *jsonFrame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if top != nil && top.object && top.expect {
			if d, ok := tok.(json.Delim); ok && d == '}' {
				stack = stack[:len(stack)-1]
				markValueDone(stack)
				continue
			}
			key, _ := tok.(string)
			fold := strings.ToLower(key)
			if top.keys[fold] {
				return fmt.Errorf("offset %d: duplicate key %q", dec.InputOffset(), key)
			}
			top.keys[fold] = true
			top.expect = false
			continue
		}
		switch d := tok.(type) {
		case json.Delim:
			switch d {
			case '{':
				if len(stack) >= maxJSONDepth {
					return fmt.Errorf("nested deeper than %d levels", maxJSONDepth)
				}
				stack = append(stack, &jsonFrame{object: true, keys: map[string]bool{}, expect: true})
			case '[':
				if len(stack) >= maxJSONDepth {
					return fmt.Errorf("nested deeper than %d levels", maxJSONDepth)
				}
				stack = append(stack, &jsonFrame{})
			case '}', ']':
				stack = stack[:len(stack)-1]
				markValueDone(stack)
			}
		default:
			markValueDone(stack)
		}
	}
}

type jsonFrame struct {
	object bool
	keys   map[string]bool
	expect bool // in an object: the next token is a key
}

// markValueDone records that a value inside the innermost object ended, so
// the next token is a key again.
func markValueDone(stack []*jsonFrame) {
	if len(stack) > 0 && stack[len(stack)-1].object {
		stack[len(stack)-1].expect = true
	}
}
