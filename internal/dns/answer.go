package dns

import (
	mdns "github.com/miekg/dns"
)

// advertisedUDPSize is the EDNS0 UDP payload size the server advertises and the most it sends
// over UDP (the DNS flag day 2020 value, which avoids IP fragmentation).
const advertisedUDPSize = 1232

// Reply returns the answer to req from v (nil answers REFUSED). Over UDP (udp true) the answer
// fits in 512 bytes, or in the client's EDNS0 payload size up to advertisedUDPSize, with TC set
// when records had to be left out, so that the client retries over TCP. It never returns nil
// and never panics on a message miekg/dns parsed.
func Reply(v *View, req *mdns.Msg, udp bool) *mdns.Msg {
	m := new(mdns.Msg)
	m.SetReply(req)
	m.RecursionAvailable = false
	m.Compress = true
	size := mdns.MinMsgSize
	if !udp {
		size = mdns.MaxMsgSize
	}
	opt := req.IsEdns0()
	if opt != nil {
		if udp {
			size = max(mdns.MinMsgSize, min(int(opt.UDPSize()), advertisedUDPSize))
		}
		m.SetEdns0(advertisedUDPSize, false)
		if opt.Version() != 0 {
			m.Rcode = mdns.RcodeBadVers // RFC 6891 6.1.3; Pack moves it into the OPT record
			m.Question = nil
			return m
		}
	}
	switch {
	case req.Opcode != mdns.OpcodeQuery:
		m.Rcode = mdns.RcodeNotImplemented
	case len(req.Question) != 1 || req.Response:
		m.Rcode = mdns.RcodeFormatError
	case req.Question[0].Qclass != mdns.ClassINET && req.Question[0].Qclass != mdns.ClassANY:
		m.Rcode = mdns.RcodeRefused
	default:
		q := req.Question[0]
		switch q.Qtype {
		case mdns.TypeAXFR, mdns.TypeIXFR:
			m.Rcode = mdns.RcodeRefused // no zone transfers
		default:
			if v == nil {
				m.Rcode = mdns.RcodeRefused
			} else {
				v.Resolve(m, q.Name, q.Qtype)
			}
		}
	}
	m.Truncate(size)
	return m
}
