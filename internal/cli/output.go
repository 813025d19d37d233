package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/jmespath/go-jmespath"
	yaml "go.yaml.in/yaml/v2"
)

var outputFormats = []string{"json", "jsonc", "table", "tsv", "yaml", "yamlc", "none"}

// checkOutput fails with a usage error for an unknown -o or a --query that does not parse.
func (e *env) checkOutput() error {
	if !slices.Contains(outputFormats, e.output) {
		return usagef("argument --output/-o: invalid choice: '%s' (choose from %s)", e.output, strings.Join(outputFormats, ", "))
	}
	if e.query != "" {
		if _, err := jmespath.Compile(e.query); err != nil {
			return usagef("argument --query: invalid jmespath_type value: '%s': %v", e.query, err)
		}
	}
	return nil
}

// print writes v (anything that encodes to JSON) to stdout in the chosen format, after
// --query. As az does, objects whose id names a resource in a resource group get a
// resourceGroup field.
func (e *env) print(v any) error { return e.printTable(v, nil) }

// tableView picks a table's columns out of each item (the output after --query), as az's
// table transformers do; it returns ok false when the items are not what it knows.
type tableView func(item map[string]any) (row []cell, ok bool)

// cell is a named column value of a table row.
type cell struct {
	col string
	val any
}

// printTable is print with columns of its own for -o table when no --query is given.
func (e *env) printTable(v any, view tableView) error {
	data, err := generic(v)
	if err != nil {
		return err
	}
	addResourceGroup(data)
	if e.query != "" {
		if data, err = jmespath.Search(e.query, data); err != nil {
			return usagef("argument --query: %v", err)
		}
	}
	if e.output == "table" && view != nil && e.query == "" {
		if t, ok := viewTable(data, view); ok {
			_, err := io.WriteString(e.stdout, t)
			return err
		}
	}
	return format(e.stdout, e.output, data)
}

// viewTable renders data with view's columns.
func viewTable(data any, view tableView) (string, bool) {
	items, ok := data.([]any)
	if !ok {
		items = []any{data}
	}
	var cols []string
	var rows []map[string]string
	for _, it := range items {
		m, ok := it.(map[string]any)
		if !ok {
			return "", false
		}
		cells, ok := view(m)
		if !ok {
			return "", false
		}
		row := map[string]string{}
		for _, c := range cells {
			if !slices.Contains(cols, c.col) {
				cols = append(cols, c.col)
			}
			row[c.col] = scalar(c.val)
		}
		rows = append(rows, row)
	}
	return render(cols, rows), true
}

// generic turns v into the maps, slices and scalars that encoding/json decodes into.
func generic(v any) (any, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode output: %w", err)
	}
	var data any
	if err := json.Unmarshal(b, &data); err != nil {
		return nil, fmt.Errorf("decode output: %w", err)
	}
	return data, nil
}

// addResourceGroup adds resourceGroup to every object with an id of the form
// /subscriptions/S/resourceGroups/G/providers/NS/T/N…, as az's output transform does.
func addResourceGroup(v any) {
	switch v := v.(type) {
	case []any:
		for _, x := range v {
			addResourceGroup(x)
		}
	case map[string]any:
		has := false
		for k := range v {
			has = has || strings.EqualFold(k, "resourceGroup")
		}
		if id, ok := v["id"].(string); ok && !has {
			if parts := strings.Split(id, "/"); len(parts) >= 9 && parts[3] == "resourceGroups" {
				v["resourceGroup"] = parts[4]
			}
		}
		for _, x := range v {
			addResourceGroup(x)
		}
	}
}

// format writes data in the output format f.
func format(w io.Writer, f string, data any) error {
	var err error
	switch f {
	case "none":
	case "json", "jsonc":
		var buf bytes.Buffer
		writeJSON(&buf, data, "", f == "jsonc")
		buf.WriteByte('\n')
		_, err = w.Write(buf.Bytes())
	case "yaml", "yamlc":
		if data == nil {
			_, err = io.WriteString(w, "null\n")
			break
		}
		var b []byte
		if b, err = yaml.Marshal(data); err == nil {
			_, err = w.Write(b)
		}
	case "table":
		_, err = io.WriteString(w, table(data))
	case "tsv":
		_, err = io.WriteString(w, tsv(data))
	}
	if err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	return nil
}

// Colors of jsonc, as az's.
const (
	colorKey    = "\x1b[94m"
	colorString = "\x1b[32m"
	colorOther  = "\x1b[36m"
	colorReset  = "\x1b[0m"
)

// writeJSON writes v as az's json output: keys sorted, two-space indent, no ASCII escaping;
// with color, as jsonc.
func writeJSON(buf *bytes.Buffer, v any, indent string, color bool) {
	paint := func(c, s string) {
		if color {
			buf.WriteString(c + s + colorReset)
		} else {
			buf.WriteString(s)
		}
	}
	switch v := v.(type) {
	case map[string]any:
		if len(v) == 0 {
			buf.WriteString("{}")
			return
		}
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		buf.WriteString("{\n")
		for i, k := range keys {
			buf.WriteString(indent + "  ")
			paint(colorKey, quote(k))
			buf.WriteString(": ")
			writeJSON(buf, v[k], indent+"  ", color)
			if i < len(keys)-1 {
				buf.WriteByte(',')
			}
			buf.WriteByte('\n')
		}
		buf.WriteString(indent + "}")
	case []any:
		if len(v) == 0 {
			buf.WriteString("[]")
			return
		}
		buf.WriteString("[\n")
		for i, x := range v {
			buf.WriteString(indent + "  ")
			writeJSON(buf, x, indent+"  ", color)
			if i < len(v)-1 {
				buf.WriteByte(',')
			}
			buf.WriteByte('\n')
		}
		buf.WriteString(indent + "]")
	case string:
		paint(colorString, quote(v))
	default:
		b, _ := json.Marshal(v)
		paint(colorOther, string(b))
	}
}

// quote is a JSON string literal that leaves non-ASCII and HTML characters as they are.
func quote(s string) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.Encode(s)
	return strings.TrimSuffix(b.String(), "\n")
}

// scalar is how table and tsv output print a scalar: Python's str() of it, as az does.
func scalar(v any) string {
	switch v := v.(type) {
	case nil:
		return "None"
	case bool:
		if v {
			return "True"
		}
		return "False"
	case string:
		return v
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	}
	return fmt.Sprint(v)
}

// table renders data as az's automatic table: one row per object (or a single object), one
// column per scalar field (keys sorted, first letter capitalized; id, type and etag left out),
// or a Result column for scalars.
func table(data any) string {
	items, ok := data.([]any)
	if !ok {
		items = []any{data}
	}
	var cols []string
	var rows []map[string]string
	for _, it := range items {
		row := map[string]string{}
		if m, ok := it.(map[string]any); ok {
			keys := make([]string, 0, len(m))
			for k := range m {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			for _, k := range keys {
				switch m[k].(type) {
				case nil, map[string]any, []any:
					continue
				}
				if k == "id" || k == "type" || k == "etag" {
					continue
				}
				col := strings.ToUpper(k[:1]) + k[1:]
				if !slices.Contains(cols, col) {
					cols = append(cols, col)
				}
				row[col] = scalar(m[k])
			}
		} else if it != nil {
			if !slices.Contains(cols, "Result") {
				cols = append(cols, "Result")
			}
			row["Result"] = scalar(it)
		}
		rows = append(rows, row)
	}
	return render(cols, rows)
}

// render lays out a table as az's (tabulate's "simple" format).
func render(cols []string, rows []map[string]string) string {
	if len(cols) == 0 {
		return ""
	}
	width := make([]int, len(cols))
	for i, c := range cols {
		width[i] = len(c)
		for _, r := range rows {
			width[i] = max(width[i], len(r[c]))
		}
	}
	var b strings.Builder
	line := func(cell func(i int) string) {
		var l strings.Builder
		for i := range cols {
			if i > 0 {
				l.WriteString("  ")
			}
			fmt.Fprintf(&l, "%-*s", width[i], cell(i))
		}
		b.WriteString(strings.TrimRight(l.String(), " ") + "\n")
	}
	line(func(i int) string { return cols[i] })
	line(func(i int) string { return strings.Repeat("-", width[i]) })
	for _, r := range rows {
		line(func(i int) string { return r[cols[i]] })
	}
	return b.String()
}

// tsv renders data as az's tsv: one line per item (or for a single object), the values of an
// object's fields in key order separated by tabs; a nested object prints as nothing and a
// nested list as its length.
func tsv(data any) string {
	items, ok := data.([]any)
	if !ok {
		items = []any{data}
	}
	var b strings.Builder
	cell := func(v any) string {
		switch v := v.(type) {
		case map[string]any:
			return ""
		case []any:
			return strconv.Itoa(len(v))
		}
		return scalar(v)
	}
	for _, it := range items {
		switch it := it.(type) {
		case map[string]any:
			keys := make([]string, 0, len(it))
			for k := range it {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			for i, k := range keys {
				if i > 0 {
					b.WriteByte('\t')
				}
				b.WriteString(cell(it[k]))
			}
		case []any:
			for i, x := range it {
				if i > 0 {
					b.WriteByte('\t')
				}
				b.WriteString(cell(x))
			}
		default:
			b.WriteString(cell(it))
		}
		b.WriteByte('\n')
	}
	return b.String()
}
