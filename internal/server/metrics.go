package server

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pglink/pglink/internal/gateway"
	"github.com/pglink/pglink/internal/operation"
	"github.com/pglink/pglink/internal/store"
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
	descEventLoops   = prometheus.NewDesc("pglink_gateway_event_loops", "Event loops relaying sessions (0: goroutines relay them).", nil, nil)
)

// gatewayCollector exports the gateway's counters.
type gatewayCollector struct {
	g interface{ Stats() gateway.Stats }
}

func (c gatewayCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descSessionsOpen, descListeners, descAdmitted, descRefused, descRevoked, descCancels, descBytes, descRevision, descDecision, descEventLoops} {
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
	ch <- prometheus.MustNewConstMetric(descEventLoops, prometheus.GaugeValue, float64(st.EventLoops))
	buckets := map[float64]uint64{}
	for i, b := range st.Decisions.Bounds {
		buckets[b.Seconds()] = st.Decisions.Counts[i]
	}
	ch <- prometheus.MustNewConstHistogram(descDecision, st.Decisions.Count, st.Decisions.Sum.Seconds(), buckets)
}

var (
	descStorePing = prometheus.NewDesc("pglink_store_ping_seconds", "Round trip of a read of the store's revision, measured at scrape; -1 if the store did not answer.", nil, nil)
	descStoreRev  = prometheus.NewDesc("pglink_store_revision", "Latest committed store revision.", nil, nil)
	descLeased    = prometheus.NewDesc("pglink_operations_leased", "Long-running operations this replica's workers hold now.", nil, nil)
	descApplied   = prometheus.NewDesc("pglink_node_applied_revision", "Store revision this replica's data plane (gateway and nameserver) enforces.", nil, nil)
	descFeedLag   = prometheus.NewDesc("pglink_change_feed_lag_revisions", "Store revisions committed that this replica's data plane has not applied yet.", nil, nil)
	descNodes     = prometheus.NewDesc("pglink_nodes", "Data-plane nodes known to the store, by status.", []string{"status"}, nil)
)

// replicaCollector exports this replica's view of the store, its operations and the nodes.
type replicaCollector struct {
	st      store.Store
	workers *operation.Workers
	agent   *nodeAgent // nil without a data plane
}

func (c replicaCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descStorePing, descStoreRev, descLeased, descApplied, descFeedLag, descNodes} {
		ch <- d
	}
}

func (c replicaCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	start := time.Now()
	rev, err := c.st.Revision(ctx)
	ping := time.Since(start).Seconds()
	if err != nil {
		ping = -1
	}
	ch <- prometheus.MustNewConstMetric(descStorePing, prometheus.GaugeValue, ping)
	if err == nil {
		ch <- prometheus.MustNewConstMetric(descStoreRev, prometheus.GaugeValue, float64(rev))
	}
	ch <- prometheus.MustNewConstMetric(descLeased, prometheus.GaugeValue, float64(c.workers.Leased()))
	if c.agent != nil {
		applied := c.agent.appliedRevision()
		ch <- prometheus.MustNewConstMetric(descApplied, prometheus.GaugeValue, float64(applied))
		if err == nil {
			ch <- prometheus.MustNewConstMetric(descFeedLag, prometheus.GaugeValue, float64(max(rev-applied, 0)))
		}
	}
	if nodes, err := c.st.Nodes(ctx); err == nil {
		now, up := time.Now(), 0
		for _, n := range nodes {
			if n.Live(now) {
				up++
			}
		}
		ch <- prometheus.MustNewConstMetric(descNodes, prometheus.GaugeValue, float64(up), "Available")
		ch <- prometheus.MustNewConstMetric(descNodes, prometheus.GaugeValue, float64(len(nodes)-up), "Unreachable")
	}
}
