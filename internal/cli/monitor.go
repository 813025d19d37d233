package cli

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/monitor/armmonitor"
	"github.com/spf13/cobra"
)

// offsetRE is az's --offset: days and hours, "##d##h" (either may be left out).
var offsetRE = regexp.MustCompile(`^(?:(\d+)d)?(?:(\d+)h)?$`)

// parseOffset parses --offset: az's "##d##h", or a Go duration such as 30m.
func parseOffset(s string) (time.Duration, error) {
	if m := offsetRE.FindStringSubmatch(s); m != nil && s != "" {
		d, _ := strconv.Atoi("0" + m[1])
		h, _ := strconv.Atoi("0" + m[2])
		return time.Duration(d)*24*time.Hour + time.Duration(h)*time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, usagef("argument --offset: '%s' is not ##d##h (e.g. 6h, 1d, 2d12h)", s)
	}
	return d, nil
}

// parseTime parses --start-time and --end-time: RFC 3339, or a date and time without zone
// (UTC), or a date.
func parseTime(flag, s string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02 15:04:05", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, usagef("argument %s: '%s' is not a date and time such as 2026-01-01T00:00:00Z", flag, s)
}

// timeRange is az's: an offset back from the end (now by default), or forward from the start.
func timeRange(now time.Time, start, end string, offset time.Duration) (time.Time, time.Time, error) {
	var from, to time.Time
	var err error
	if start != "" {
		if from, err = parseTime("--start-time", start); err != nil {
			return from, to, err
		}
	}
	if end != "" {
		if to, err = parseTime("--end-time", end); err != nil {
			return from, to, err
		}
	}
	switch {
	case start == "" && end == "":
		to = now.UTC()
		from = to.Add(-offset)
	case end == "":
		to = from.Add(offset)
	case start == "":
		from = to.Add(-offset)
	}
	return from, to, nil
}

// activityFilter is the $filter of an activity log query.
type activityFilter struct {
	from, to                                                 time.Time
	group, resourceID, caller, status, correlation, provider string
}

func (f activityFilter) String() string {
	clauses := []string{
		"eventTimestamp ge " + odataQuote(f.from.Format(time.RFC3339)),
		"eventTimestamp le " + odataQuote(f.to.Format(time.RFC3339)),
	}
	for _, c := range []struct{ name, val string }{
		{"resourceGroupName", f.group}, {"resourceUri", f.resourceID}, {"caller", f.caller},
		{"status", f.status}, {"correlationId", f.correlation}, {"resourceProvider", f.provider},
	} {
		if c.val != "" {
			clauses = append(clauses, c.name+" eq "+odataQuote(c.val))
		}
	}
	return strings.Join(clauses, " and ")
}

func eventTable(m map[string]any) ([]cell, bool) {
	return []cell{{"EventTimestamp", m["eventTimestamp"]}, {"Caller", m["caller"]},
		{"Operation", field(m, "operationName.value")}, {"Status", field(m, "status.value")},
		{"ResourceGroup", m["resourceGroupName"]}, {"Resource", lastSegment(str(m, "resourceId"))}}, m["eventTimestamp"] != nil
}

func (e *env) monitorCmd() *cobra.Command {
	var offset, start, end string
	var f activityFilter
	var maxEvents int
	list := &cobra.Command{
		Use:   "list",
		Short: "List activity log events: who did what, when, and whether it succeeded",
		Long: `List activity log events, newest first. The time range is the --offset (default 6h) before
now, or from --start-time, or up to --end-time.`,
		Example: `  pglink monitor activity-log list -g db-rg -o table
  pglink monitor activity-log list --offset 1d --caller dana@pglink.local --status Failed
  pglink monitor activity-log list --resource-id "$SERVER_ID" --query '[].{when:eventTimestamp, who:caller, what:operationName.value}' -o table`,
		Args: cobra.NoArgs,
	}
	fl := list.Flags()
	fl.StringVar(&offset, "offset", "6h", "time range, in ##d##h (e.g. 6h, 1d, 2d12h)")
	fl.StringVar(&start, "start-time", "", "start of the range, e.g. 2026-01-01T00:00:00Z")
	fl.StringVar(&end, "end-time", "", "end of the range; default: now, or start + offset")
	fl.StringVarP(&f.group, "resource-group", "g", "", "only events of this resource group")
	fl.StringVar(&f.resourceID, "resource-id", "", "only events of this resource and the resources below it")
	fl.StringVar(&f.caller, "caller", "", "only events of this caller (user name or client id)")
	fl.StringVar(&f.status, "status", "", "only events with this status, e.g. Succeeded, Failed")
	fl.StringVar(&f.correlation, "correlation-id", "", "only events of this correlation id")
	fl.StringVar(&f.provider, "namespace", "", "only events of this resource provider, e.g. Microsoft.DBforPostgreSQL")
	fl.IntVar(&maxEvents, "max-events", 50, "most events to list")
	list.RunE = e.run(func(ctx context.Context, cmd *cobra.Command) error {
		if f.group != "" && f.resourceID != "" {
			return usagef("give --resource-group or --resource-id, not both")
		}
		off, err := parseOffset(offset)
		if err != nil {
			return err
		}
		if f.from, f.to, err = timeRange(e.now(), start, end, off); err != nil {
			return err
		}
		s, err := e.session()
		if err != nil {
			return err
		}
		client, err := armmonitor.NewActivityLogsClient(s.p.SubscriptionID, s.cred, s.armOptions())
		if err != nil {
			return err
		}
		events := []map[string]any{}
		var cp capture
		for pager := client.NewListPager(f.String(), nil); pager.More() && len(events) < maxEvents; {
			if _, err := pager.NextPage(cp.ctx(ctx)); err != nil {
				return fmt.Errorf("list activity log events: %w", err)
			}
			page, err := cp.object()
			if err != nil {
				return err
			}
			items, _ := page["value"].([]any)
			for _, it := range items {
				if m, ok := it.(map[string]any); ok && len(events) < maxEvents {
					events = append(events, m)
				}
			}
		}
		return e.printTable(events, eventTable)
	})
	return group("monitor", "Monitor: the activity log", group("activity-log", "Read the activity log", list))
}
