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

	ratioGoal := func(test, p, q string, want float64) {
		r := b.ratio(test, p, q, tps)
		line(r >= want, fmt.Sprintf("%s: %s TPS ≥ %.2f× %s's", test, p, want, q),
			fmt.Sprintf("%.3f×", r), fmt.Sprintf("(%+.1f%%)", 100*(r-want)))
	}
	ratioGoal("-S c=8", pPglink, pBouncer, 1.05)
	ratioGoal("-S c=8", pPglinkTLS, pBouncerTLS, 1.10)
	ratioGoal("-S c=1", pPglink, pBouncer, 1)
	ratioGoal("-S c=1", pPglinkTLS, pBouncerTLS, 1)
	ratioGoal("-S c=64", pPglink, pBouncer, 1)
	ratioGoal("-S c=64", pPglinkTLS, pBouncerTLS, 1)
	for _, pq := range [][2]string{{pPglink, pBouncer}, {pPglinkTLS, pBouncerTLS}} {
		// Paired within each round, as the ratios are: the median of (p − direct) − (q − direct).
		// The medians of each path's own added latency come beside it.
		d := 1000 * b.diff("-S c=1", pq[0], pq[1], latency)
		line(d <= 0, fmt.Sprintf("added latency at 1 client: %s ≤ %s", pq[0], pq[1]),
			fmt.Sprintf("%+.1f µs per round", d),
			fmt.Sprintf("(%.1f µs %s; medians %+.1f µs vs %+.1f µs)", abs(d), overUnder(d > 0),
				b.addedLatency(pq[0]), b.addedLatency(pq[1])))
	}

	added := b.addedLatency(pPglink)
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
