package arm

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/pglink/pglink/internal/resource"
)

type serverDoc struct {
	Location   string            `json:"location"`
	Tags       map[string]string `json:"tags"`
	Properties struct {
		Version string `json:"version"`
		Storage struct {
			StorageSizeGB int `json:"storageSizeGB"`
		} `json:"storage"`
		Ha        bool     `json:"ha"`
		Prefixes  []string `json:"prefixes"`
		Threshold float64  `json:"threshold"`
	} `json:"properties"`
}

func TestDecodeErrorsSpeakJSON(t *testing.T) {
	for _, tc := range []struct {
		body string
		want string // the whole message after the common prefix
	}{
		{`{"location":"eastus","properties":{"administratorLogin":"a","version":16}}`,
			"property 'properties.version' must be a string, got a number (near line 1, column 72)."},
		{`{"properties":{"storage":{"storageSizeGB":"big"}}}`,
			"property 'properties.storage.storageSizeGB' must be a whole number in range, got a string (near line 1, column 47)."},
		{`{"properties":{"storage":{"storageSizeGB":1.5}}}`,
			"property 'properties.storage.storageSizeGB' must be a whole number in range, got the number 1.5 (near line 1, column 45)."},
		{`{"properties":{"ha":"yes"}}`,
			"property 'properties.ha' must be a boolean (true or false), got a string (near line 1, column 25)."},
		{"{\n  \"properties\": {\n    \"prefixes\": \"10.0.0.0/8\"\n  }\n}",
			"property 'properties.prefixes' must be an array, got a string (near line 3, column 28)."},
		{`{"tags":["a"]}`, "property 'tags' must be an object, got an array (near line 1, column 9)."},
		{`"not an object"`, "the request body must be an object, got a string (near line 1, column 15)."},
		{`{"location": "eastus",}`, "the body is not valid JSON: invalid character '}' looking for beginning of object key string (near line 1, column 23)."},
		{`{"location": "eastus"`, "the body is not valid JSON: the JSON ends too early (near line 1, column 21)."},
		{"{\n\"location\": eastus}", "the body is not valid JSON: invalid character 'e' looking for beginning of value (near line 2, column 13)."},
	} {
		req := &Request{Body: []byte(tc.body)}
		var v serverDoc
		err := req.Decode(&v)
		e, ok := resource.AsError(err)
		if !ok || e.Code != "InvalidRequestContent" || e.Kind != resource.Invalid {
			t.Errorf("Decode(%q) = %v; want InvalidRequestContent", tc.body, err)
			continue
		}
		const prefix = "The request content was invalid and could not be deserialized: "
		if got := strings.TrimPrefix(e.Message, prefix); got != tc.want || !strings.HasPrefix(e.Message, prefix) {
			t.Errorf("Decode(%q) message = %q; want %q", tc.body, e.Message, prefix+tc.want)
		}
		for _, goWord := range []string{"Go struct", "serverDoc", "float64", "int", "json:", "unmarshal"} {
			if strings.Contains(e.Message, goWord) {
				t.Errorf("Decode(%q) message %q mentions %q", tc.body, e.Message, goWord)
			}
		}
	}
}

func TestDecodeAcceptsUnknownProperties(t *testing.T) {
	req := &Request{Body: []byte(`{"location":"eastus","somethingNew":{"a":[1,2]},"properties":{"version":"16","future":true}}`)}
	var v serverDoc
	if err := req.Decode(&v); err != nil {
		t.Fatalf("Decode = %v; want nil", err)
	}
	if v.Properties.Version != "16" {
		t.Errorf("version = %q; want 16", v.Properties.Version)
	}
}

func TestCheckTags(t *testing.T) {
	many := func(n int) string {
		var b strings.Builder
		b.WriteString(`{"tags":{`)
		for i := range n {
			if i > 0 {
				b.WriteString(",")
			}
			b.WriteString(`"t` + strings.Repeat("x", i) + `":"v"`)
		}
		b.WriteString("}}")
		return b.String()
	}
	for _, tc := range []struct {
		name, body, code string
	}{
		{"no tags", `{"location":"eastus"}`, ""},
		{"not json", `not json`, ""},
		{"fifty tags", many(50), ""},
		{"fifty-one tags", many(51), "InvalidTagCount"},
		{"name of 512", `{"tags":{"` + strings.Repeat("n", 512) + `":"v"}}`, ""},
		{"name of 513", `{"tags":{"` + strings.Repeat("n", 513) + `":"v"}}`, "InvalidTagNameLength"},
		{"name of 512 emoji is 512 characters", `{"tags":{"` + strings.Repeat("😀", 512) + `":"v"}}`, ""},
		{"value of 256", `{"tags":{"n":"` + strings.Repeat("v", 256) + `"}}`, ""},
		{"value of 257", `{"tags":{"n":"` + strings.Repeat("v", 257) + `"}}`, "InvalidTagValueLength"},
		{"empty name", `{"tags":{"":"v"}}`, "InvalidTagNameCharacters"},
		{"slash", `{"tags":{"a/b":"v"}}`, "InvalidTagNameCharacters"},
		{"percent", `{"tags":{"100%":"v"}}`, "InvalidTagNameCharacters"},
		{"angle", `{"tags":{"<script>":"v"}}`, "InvalidTagNameCharacters"},
		{"backslash", `{"tags":{"a\\b":"v"}}`, "InvalidTagNameCharacters"},
		{"NUL", `{"tags":{"a\u0000b":"v"}}`, "InvalidTagNameCharacters"},
		{"value with slash is fine", `{"tags":{"url":"https://x/y?z=1&w=%20"}}`, ""},
		{"non-string value left to the type", `{"tags":{"n":5}}`, ""},
	} {
		err := CheckTags([]byte(tc.body))
		got := ""
		if e, ok := resource.AsError(err); ok {
			got = e.Code
			if e.Kind != resource.Invalid || e.Target != "tags" {
				t.Errorf("%s: CheckTags = kind %v target %q; want Invalid, tags", tc.name, e.Kind, e.Target)
			}
			if len(e.Message) > 1000 {
				t.Errorf("%s: message is %d bytes; it must quote names shortened", tc.name, len(e.Message))
			}
		} else if err != nil {
			t.Errorf("%s: CheckTags = %v; want a *resource.Error", tc.name, err)
		}
		if got != tc.code {
			t.Errorf("%s: CheckTags code = %q; want %q", tc.name, got, tc.code)
		}
	}
}

func TestReadBodyRefusesOversize(t *testing.T) {
	for _, tc := range []struct {
		name    string
		size    int
		chunked bool // no Content-Length: the limit must hold while reading
		wantErr bool
	}{
		{"at the limit", MaxBodyBytes, false, false},
		{"one byte over", MaxBodyBytes + 1, false, true},
		{"over, chunked", MaxBodyBytes + 1, true, true},
		{"50 MB, chunked", 50 << 20, true, true},
	} {
		r := httptest.NewRequest(http.MethodPut, "/x", strings.NewReader(strings.Repeat("a", tc.size)))
		if tc.chunked {
			r.ContentLength = -1
		}
		body, err := readBody(httptest.NewRecorder(), r)
		if !tc.wantErr {
			if err != nil || len(body) != tc.size {
				t.Errorf("%s: readBody = %d bytes, %v; want %d bytes", tc.name, len(body), err, tc.size)
			}
			continue
		}
		e, ok := resource.AsError(err)
		if !ok || e.Kind != resource.TooLarge || e.Code != "RequestContentTooLarge" || body != nil {
			t.Errorf("%s: readBody = %d bytes, %v; want 413 RequestContentTooLarge and no body", tc.name, len(body), err)
		}
		if statusOf[e.Kind] != http.StatusRequestEntityTooLarge {
			t.Errorf("%s: status = %d; want 413", tc.name, statusOf[e.Kind])
		}
	}
}

// TestKindOfStatus: every kind's status reads back as the kind; a status no kind has is Internal.
func TestKindOfStatus(t *testing.T) {
	for k, st := range statusOf {
		if got := KindOfStatus(st); got != k {
			t.Errorf("KindOfStatus(%d) = %v; want %v", st, got, k)
		}
	}
	if got := KindOfStatus(http.StatusTeapot); got != resource.Internal {
		t.Errorf("KindOfStatus(418) = %v; want Internal", got)
	}
}
