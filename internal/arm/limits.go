package arm

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/pglink/pglink/internal/resource"
)

// MaxBodyBytes is the largest request body the front door accepts, as Azure Resource Manager:
// 4 MiB. A larger body is refused with 413 RequestContentTooLarge, never cut short.
const MaxBodyBytes = 4 << 20

// Azure's limits on the tags of a resource or resource group.
const (
	MaxTags           = 50
	MaxTagNameChars   = 512
	MaxTagValueChars  = 256
	tagNameForbidden  = `<>%&\?/`
	tagNameForbiddenL = `'<', '>', '%', '&', '\', '?', '/'`
)

// readBody reads the body of a write, refusing one over MaxBodyBytes with 413.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	if r.ContentLength > MaxBodyBytes {
		return nil, errBodyTooLarge()
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return nil, errBodyTooLarge()
	}
	if err != nil {
		return nil, resource.Errorf(resource.Invalid, "InvalidRequestContent", "The request body could not be read.")
	}
	return body, nil
}

func errBodyTooLarge() error {
	return resource.Errorf(resource.TooLarge, "RequestContentTooLarge",
		"The request content size exceeds the maximum size of %d MB.", MaxBodyBytes>>20)
}

// CheckTags applies Azure's rules to the tags member of a PUT or PATCH body: at most 50 tags,
// names of 1-512 characters without '<', '>', '%', '&', '\', '?', '/' or control characters,
// values of at most 256 characters. A body that is not a JSON object with a tags object is
// left to the type's own decoding, which reports it.
func CheckTags(body []byte) error {
	var doc struct {
		Tags map[string]json.RawMessage `json:"tags"`
	}
	if json.Unmarshal(body, &doc) != nil || len(doc.Tags) == 0 {
		return nil
	}
	if len(doc.Tags) > MaxTags {
		return tagError("InvalidTagCount",
			"The resource has %d tags; at most %d are allowed. Remove some tags, or combine several values into one tag.", len(doc.Tags), MaxTags)
	}
	names := make([]string, 0, len(doc.Tags))
	for n := range doc.Tags {
		names = append(names, n)
	}
	sort.Strings(names)
	var bad []string
	for _, n := range names {
		if n == "" || strings.ContainsAny(n, tagNameForbidden) || strings.IndexFunc(n, unicode.IsControl) >= 0 || !utf8.ValidString(n) {
			bad = append(bad, resource.QuoteName(n))
		}
	}
	if len(bad) > 0 {
		return tagError("InvalidTagNameCharacters",
			"The tag names '%s' are empty or have reserved characters %s or control characters.", strings.Join(bad, ","), tagNameForbiddenL)
	}
	for _, n := range names {
		if c := utf8.RuneCountInString(n); c > MaxTagNameChars {
			return tagError("InvalidTagNameLength",
				"The tag name '%s' has %d characters; tag names may have at most %d.", resource.QuoteName(n), c, MaxTagNameChars)
		}
		var v string
		if json.Unmarshal(doc.Tags[n], &v) != nil {
			continue // not a string: the type's decoding says so
		}
		if c := utf8.RuneCountInString(v); c > MaxTagValueChars {
			return tagError("InvalidTagValueLength",
				"The value of tag '%s' has %d characters; tag values may have at most %d.", resource.QuoteName(n), c, MaxTagValueChars)
		}
	}
	return nil
}

func tagError(code, format string, args ...any) error {
	e := resource.Errorf(resource.Invalid, code, format, args...)
	e.Target = "tags"
	return e
}

// decodeError turns an encoding/json error for body into a message in the user's terms: what
// is wrong, where (property path, line and column), and never a Go type name.
func decodeError(body []byte, err error) error {
	const prefix = "The request content was invalid and could not be deserialized: "
	var (
		syn *json.SyntaxError
		typ *json.UnmarshalTypeError
		msg string
	)
	switch {
	case errors.As(err, &syn):
		what := strings.TrimPrefix(syn.Error(), "json: ")
		if strings.Contains(what, "unexpected end of JSON input") {
			what = "the JSON ends too early"
		}
		msg = fmt.Sprintf("the body is not valid JSON: %s (near %s).", what, position(body, syn.Offset))
	case errors.As(err, &typ):
		want := jsonKind(typ.Type)
		got := valueKind(typ.Value)
		if typ.Field == "" {
			msg = fmt.Sprintf("the request body must be %s, got %s (near %s).", want, got, position(body, typ.Offset))
		} else {
			msg = fmt.Sprintf("property '%s' must be %s, got %s (near %s).", typ.Field, want, got, position(body, typ.Offset))
		}
	default:
		msg = "the body is not the JSON document this resource type expects."
	}
	return resource.Errorf(resource.Invalid, "InvalidRequestContent", "%s%s", prefix, msg)
}

// position returns "line L, column C" of byte offset off in body, both counted from 1.
func position(body []byte, off int64) string {
	if off > int64(len(body)) {
		off = int64(len(body))
	}
	if off < 0 {
		off = 0
	}
	before := body[:off]
	line := bytes.Count(before, []byte("\n")) + 1
	col := utf8.RuneCount(before[bytes.LastIndexByte(before, '\n')+1:])
	if col == 0 {
		col = 1
	}
	return fmt.Sprintf("line %d, column %d", line, col)
}

// jsonKind names, in JSON's terms, what a value decoded into t must be.
func jsonKind(t reflect.Type) string {
	if t == nil {
		return "a value"
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean (true or false)"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number in range"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Map, reflect.Struct:
		return "an object"
	}
	return "a different kind of value"
}

// valueKind names the kind of JSON value encoding/json reports ("number", "number 1.5",
// "string", "bool", "array", "object").
func valueKind(v string) string {
	kind, detail, _ := strings.Cut(v, " ")
	switch kind {
	case "number":
		if detail != "" {
			return "the number " + detail
		}
		return "a number"
	case "string":
		return "a string"
	case "bool":
		return "a boolean"
	case "array":
		return "an array"
	case "object":
		return "an object"
	case "null":
		return "null"
	}
	return "a " + v
}
