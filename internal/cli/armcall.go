package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/mattn/go-isatty"
	"github.com/spf13/cobra"
)

// capture records the last HTTP response of the SDK calls made with its context, so that a
// command prints a resource as the server sent it (pglink's extensions, such as
// properties.dataPlane, included) rather than as the SDK's model knows it. The request itself
// is the SDK client's: authentication, retries, long-running operations and errors.
type capture struct{ resp *http.Response }

// ctx returns ctx with the capture attached.
func (c *capture) ctx(ctx context.Context) context.Context {
	return policy.WithCaptureResponse(ctx, &c.resp)
}

// object decodes the body of the last response as a JSON object.
func (c *capture) object() (map[string]any, error) {
	if c.resp == nil {
		return nil, errors.New("the server sent no response")
	}
	body, err := runtime.Payload(c.resp)
	if err != nil {
		return nil, fmt.Errorf("read response: %w", err)
	}
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, fmt.Errorf("decode response: %w", err)
	}
	return m, nil
}

// collect pages through pager and returns the items of every page, as the server sent them.
func collect[T any](ctx context.Context, pager *runtime.Pager[T]) ([]map[string]any, error) {
	var c capture
	out := []map[string]any{}
	for pager.More() {
		if _, err := pager.NextPage(c.ctx(ctx)); err != nil {
			return nil, err
		}
		page, err := c.object()
		if err != nil {
			return nil, err
		}
		items, _ := page["value"].([]any)
		for _, it := range items {
			if m, ok := it.(map[string]any); ok {
				out = append(out, m)
			}
		}
	}
	return out, nil
}

// flatten moves the fields of an ARM resource's properties to its top level, and so for the
// objects nested in it (a virtual network's subnets, a private endpoint's connections), as az
// prints the resources of its SDK commands; a top-level field of the same name wins.
func flatten(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	if props, ok := m["properties"].(map[string]any); ok {
		for k, v := range props {
			out[k] = flattenAny(v)
		}
	}
	for k, v := range m {
		if k != "properties" {
			out[k] = flattenAny(v)
		} else if _, ok := v.(map[string]any); !ok {
			out[k] = v
		}
	}
	return out
}

func flattenAny(v any) any {
	switch v := v.(type) {
	case map[string]any:
		return flatten(v)
	case []any:
		out := make([]any, len(v))
		for i, x := range v {
			out[i] = flattenAny(x)
		}
		return out
	}
	return v
}

func flattenAll(ms []map[string]any) []map[string]any {
	out := make([]map[string]any, len(ms))
	for i, m := range ms {
		out[i] = flatten(m)
	}
	return out
}

// field returns the value at a dotted path of m, looking in properties too when the resource
// is not flattened; nil if there is none.
func field(m map[string]any, path string) any {
	var v any = m
	for _, k := range strings.Split(path, ".") {
		o, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		next, ok := o[k]
		if !ok {
			if props, isMap := o["properties"].(map[string]any); isMap {
				next, ok = props[k]
			}
		}
		if !ok {
			return nil
		}
		v = next
	}
	return v
}

// str is field as a string ("" if it is not one).
func str(m map[string]any, path string) string {
	s, _ := field(m, path).(string)
	return s
}

// missingError is the failure of a show command whose resource does not exist: exit code 3, as
// az's.
type missingError struct{ err error }

func (m missingError) Error() string { return m.err.Error() }
func (m missingError) Unwrap() error { return m.err }

// isNotFound reports whether err is an ARM answer 404.
func isNotFound(err error) bool {
	var re *azcore.ResponseError
	return errors.As(err, &re) && re.StatusCode == http.StatusNotFound
}

// shown marks err as a missing resource (exit 3) when the server answered 404.
func shown(err error) error {
	if isNotFound(err) {
		return missingError{err}
	}
	return err
}

// pollEvery is how often a long-running operation is polled when the server gives no
// Retry-After (pglink's gives one second); azcore allows no less.
const pollEvery = time.Second

// wait polls a long-running operation until it ends, with a spinner on stderr when stderr is a
// terminal. The last response is captured by ctx's capture, if any.
func wait[T any](ctx context.Context, e *env, p *runtime.Poller[T]) (T, error) {
	stop := e.spin()
	defer stop()
	return p.PollUntilDone(ctx, &runtime.PollUntilDoneOptions{Frequency: pollEvery})
}

// finish completes a long-running call whose Begin returned poller and err: with noWait it
// returns at once; otherwise it waits (with the spinner) and, if cp is not nil, prints the
// result cp captured as view. Errors are prefixed with what ("create subnet x").
func finish[T any](ctx context.Context, e *env, poller *runtime.Poller[T], err error, noWait bool, cp *capture, view tableView, what string) error {
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if noWait {
		return nil
	}
	if cp != nil {
		ctx = cp.ctx(ctx)
	}
	if _, err := wait(ctx, e, poller); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if cp == nil {
		return nil
	}
	return e.printObject(cp, view)
}

// spin shows az's "Running" spinner on stderr until the returned stop is called; it shows
// nothing when stderr is not a terminal or warnings are off.
func (e *env) spin() (stop func()) {
	f, ok := e.stderr.(*os.File)
	if !ok || e.quiet || !(isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd())) {
		return func() {}
	}
	return spinner(f, 100*time.Millisecond)
}

// spinner draws a spinner on w every tick until stop is called; stop erases it and returns
// once the drawing goroutine has ended.
func spinner(w io.Writer, tick time.Duration) (stop func()) {
	done, ended := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(ended)
		t := time.NewTicker(tick)
		defer t.Stop()
		frames := `|/-\`
		for i := 0; ; i++ {
			fmt.Fprintf(w, "\r%c Running ..", frames[i%len(frames)])
			select {
			case <-done:
				fmt.Fprint(w, "\r\x1b[K")
				return
			case <-t.C:
			}
		}
	}()
	return func() {
		close(done)
		<-ended
	}
}

// confirmDelete asks az's question unless yes is set; it returns false when the user says no.
func (e *env) confirmDelete(yes bool) (bool, error) {
	if yes {
		return true, nil
	}
	return e.confirm("Are you sure you want to perform this operation?")
}

// required marks flags of c as required.
func required(c *cobra.Command, names ...string) {
	for _, n := range names {
		c.MarkFlagRequired(n)
	}
}
