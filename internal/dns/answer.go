package dns

import (
	"encoding/binary"
	"fmt"
	"log/slog"

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

// maxMemo bounds the packed answers one UDP reader keeps per view: names asked beyond it are
// answered but not kept (a flood of random names cannot grow memory).
const maxMemo = 20000

// packedReply appends to dst the packed reply to req from v (v may be nil). It returns nil
// only if the reply cannot be packed (logged).
func (v *View) packedReply(dst []byte, req *mdns.Msg, udp bool, log *slog.Logger) []byte {
	m := Reply(v, req, udp)
	b, err := m.PackBuffer(dst[:cap(dst)])
	if err != nil {
		log.Error("pack dns answer", "question", fmt.Sprint(req.Question), "err", err)
		return nil
	}
	return b
}

// appendMemoKey appends to dst what a reply to req depends on besides its ID and the view: the
// question as asked (case preserved, as a reply echoes it), the flags a reply copies, EDNS0 and
// the transport. ok is false for a message whose reply must not be memoized (not a plain
// query of one question, EDNS options or another version).
func appendMemoKey(dst []byte, req *mdns.Msg, udp bool) (_ []byte, ok bool) {
	if len(req.Question) != 1 || req.Response || req.Opcode != mdns.OpcodeQuery || len(req.Answer) > 0 || len(req.Ns) > 0 || len(req.Extra) > 1 {
		return dst, false
	}
	q := req.Question[0]
	size := 0
	if opt := req.IsEdns0(); opt != nil {
		if len(opt.Option) > 0 || opt.Version() != 0 {
			return dst, false
		}
		size = int(min(max(opt.UDPSize(), mdns.MinMsgSize), advertisedUDPSize))
	} else if len(req.Extra) > 0 {
		return dst, false
	}
	var flags byte
	if req.RecursionDesired {
		flags |= 1
	}
	if req.CheckingDisabled {
		flags |= 2
	}
	if udp {
		flags |= 4
	}
	dst = append(dst, q.Name...)
	dst = binary.BigEndian.AppendUint16(dst, q.Qtype)
	dst = binary.BigEndian.AppendUint16(dst, q.Qclass)
	dst = binary.BigEndian.AppendUint16(dst, uint16(size))
	return append(dst, flags), true
}
