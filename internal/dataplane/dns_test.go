package dataplane

import (
	"strings"
	"testing"

	"github.com/pglink/pglink/internal/providers/network"
)

func TestRecordsOf(t *testing.T) {
	ttl := int64(300)
	tests := []struct {
		name string
		rs   network.RecordSet
		want string
	}{
		{"apex A", network.RecordSet{Name: "@", Properties: network.RecordSetProperties{TTL: &ttl,
			ARecords: []network.ARecord{{IPv4Address: "10.0.0.4"}, {IPv4Address: "not-an-ip"}}}},
			"zone.test.\t300\tIN\tA\t10.0.0.4"},
		{"AAAA", network.RecordSet{Name: "Db", Properties: network.RecordSetProperties{TTL: &ttl,
			AAAARecords: []network.AAAARecord{{IPv6Address: "fd00::4"}}}},
			"db.zone.test.\t300\tIN\tAAAA\tfd00::4"},
		{"CNAME", network.RecordSet{Name: "www", Properties: network.RecordSetProperties{TTL: &ttl,
			CNAMERecord: &network.CNAMERecord{CNAME: "Db.zone.test"}}},
			"www.zone.test.\t300\tIN\tCNAME\tdb.zone.test."},
		{"MX", network.RecordSet{Name: "@", Properties: network.RecordSetProperties{TTL: &ttl,
			MXRecords: []network.MXRecord{{Preference: 10, Exchange: "mail.zone.test"}}}},
			"zone.test.\t300\tIN\tMX\t10 mail.zone.test."},
		{"PTR", network.RecordSet{Name: "4", Properties: network.RecordSetProperties{TTL: &ttl,
			PTRRecords: []network.PTRRecord{{PTRDName: "db.zone.test"}}}},
			"4.zone.test.\t300\tIN\tPTR\tdb.zone.test."},
		{"SRV", network.RecordSet{Name: "_pg._tcp", Properties: network.RecordSetProperties{TTL: &ttl,
			SRVRecords: []network.SRVRecord{{Priority: 1, Weight: 2, Port: 5432, Target: "db.zone.test"}}}},
			"_pg._tcp.zone.test.\t300\tIN\tSRV\t1 2 5432 db.zone.test."},
		{"TXT", network.RecordSet{Name: "t", Properties: network.RecordSetProperties{
			TXTRecords: []network.TXTRecord{{Value: []string{"a b", "c"}}}}},
			"t.zone.test.\t3600\tIN\tTXT\t\"a b\" \"c\""},
	}
	for _, tt := range tests {
		var got []string
		for _, rr := range RecordsOf(tt.rs, "Zone.test") {
			got = append(got, rr.String())
		}
		if g := strings.Join(got, "\n"); g != tt.want {
			t.Errorf("RecordsOf(%s) = %q; want %q", tt.name, g, tt.want)
		}
	}
}
