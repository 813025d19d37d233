package main

import "fmt"

// printGoals prints the data-plane goals of the issue with PASS or MISS and the margin.
func printGoals(b *benchResult, t *toggleResult, m *memResult) {
	fmt.Println("\ngoals")
	line := func(pass bool, goal, got, margin string) {
		verdict := "PASS"
		if !pass {
			verdict = "MISS"
		}
		fmt.Printf("  %-4s %-48s %-26s %s\n", verdict, goal, got, margin)
	}

	ratio := b.median("-S c=8", "pglink", tps) / b.median("-S c=8", "PgBouncer", tps)
	line(ratio >= 1, "throughput at 8 clients ≥ PgBouncer's",
		fmt.Sprintf("%.1f%% of PgBouncer", 100*ratio), fmt.Sprintf("(%+.1f%%)", 100*(ratio-1)))

	added := b.addedLatency("pglink")
	line(added <= 30, "added latency at 1 client ≤ 30 µs over direct",
		fmt.Sprintf("%+.1f µs", added), fmt.Sprintf("(%.1f µs %s)", abs(30-added), overUnder(added > 30)))

	ap := pct(t.approveReq, 0.99)
	line(ap.Seconds() < 0.1, "approve → first query p99 < 100 ms",
		ms(ap), fmt.Sprintf("(%s %s; from the API's answer %s)", ms(abs(100e6-ap)), overUnder(ap.Seconds() >= 0.1), ms(pct(t.approveAPI, 0.99))))

	rv := pct(t.rejectReq, 0.99)
	line(rv.Seconds() < 1, "reject → open session cut p99 < 1 s",
		ms(rv), fmt.Sprintf("(%s %s; from the API's answer %s)", ms(abs(1e9-rv)), overUnder(rv.Seconds() >= 1), ms(pct(t.rejectAPI, 0.99))))

	mib := float64(m.after) / 1024
	what := fmt.Sprintf("%.1f MiB RSS", mib)
	if m.opened < 1000 {
		// Fewer sessions could be opened: extrapolate linearly from the measured slope.
		mib = (float64(m.before) + float64(m.after-m.before)*1000/float64(m.opened)) / 1024
		what = fmt.Sprintf("%.1f MiB RSS (extrapolated from %d)", mib, m.opened)
	}
	line(mib < 200, "1,000 idle sessions < 200 MiB RSS", what,
		fmt.Sprintf("(%.1f MiB %s)", abs(200-mib), overUnder(mib >= 200)))
}

func overUnder(over bool) string {
	if over {
		return "over"
	}
	return "to spare"
}

func abs[T ~int64 | ~float64](x T) T {
	if x < 0 {
		return -x
	}
	return x
}
