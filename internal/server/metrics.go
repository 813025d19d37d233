package server

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/pglink/pglink/internal/gateway"
)

var (
	descSessionsOpen = prometheus.NewDesc("pglink_gateway_sessions_open", "Admitted client sessions not yet closed.", nil, nil)
	descListeners    = prometheus.NewDesc("pglink_gateway_listeners", "Bound data-plane endpoint listeners.", nil, nil)
	descAdmitted     = prometheus.NewDesc("pglink_gateway_admitted_total", "Clients admitted.", nil, nil)
	descRefused      = prometheus.NewDesc("pglink_gateway_refused_total", "Clients refused, by reason.", []string{"reason"}, nil)
	descRevoked      = prometheus.NewDesc("pglink_gateway_revoked_total", "Sessions closed because access was revoked.", nil, nil)
	descCancels      = prometheus.NewDesc("pglink_gateway_cancel_requests_total", "Cancel requests forwarded to PostgreSQL.", nil, nil)
	descBytes        = prometheus.NewDesc("pglink_gateway_bytes_total", "Bytes relayed, by direction (in: client to server).", []string{"direction"}, nil)
	descRevision     = prometheus.NewDesc("pglink_gateway_policy_revision", "Store revision of the policy in force.", nil, nil)
	descDecision     = prometheus.NewDesc("pglink_gateway_decision_seconds", "Latency of admission decisions.", nil, nil)
)

// gatewayCollector exports the gateway's counters.
type gatewayCollector struct {
	g interface{ Stats() gateway.Stats }
}

func (c gatewayCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descSessionsOpen, descListeners, descAdmitted, descRefused, descRevoked, descCancels, descBytes, descRevision, descDecision} {
		ch <- d
	}
}

func (c gatewayCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.g.Stats()
	ch <- prometheus.MustNewConstMetric(descSessionsOpen, prometheus.GaugeValue, float64(st.SessionsOpen))
	ch <- prometheus.MustNewConstMetric(descListeners, prometheus.GaugeValue, float64(st.Listeners))
	ch <- prometheus.MustNewConstMetric(descAdmitted, prometheus.CounterValue, float64(st.Admitted))
	for reason, n := range st.Refused {
		ch <- prometheus.MustNewConstMetric(descRefused, prometheus.CounterValue, float64(n), string(reason))
	}
	ch <- prometheus.MustNewConstMetric(descRevoked, prometheus.CounterValue, float64(st.Revoked))
	ch <- prometheus.MustNewConstMetric(descCancels, prometheus.CounterValue, float64(st.Cancels))
	ch <- prometheus.MustNewConstMetric(descBytes, prometheus.CounterValue, float64(st.BytesIn), "in")
	ch <- prometheus.MustNewConstMetric(descBytes, prometheus.CounterValue, float64(st.BytesOut), "out")
	ch <- prometheus.MustNewConstMetric(descRevision, prometheus.GaugeValue, float64(st.Revision))
	buckets := map[float64]uint64{}
	for i, b := range st.Decisions.Bounds {
		buckets[b.Seconds()] = st.Decisions.Counts[i]
	}
	ch <- prometheus.MustNewConstHistogram(descDecision, st.Decisions.Count, st.Decisions.Sum.Seconds(), buckets)
}
