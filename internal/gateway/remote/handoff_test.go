package remote

import (
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"
)

// TestHandoffCarriesDescriptors sends a message with more descriptors than one SCM_RIGHTS
// batch holds, then another message, and checks each descriptor is the file it was.
func TestHandoffCarriesDescriptors(t *testing.T) {
	path := filepath.Join(t.TempDir(), "handoff.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan *HandoffConn, 1)
	go func() {
		h, err := AcceptHandoff(ln)
		if err != nil {
			t.Error(err)
		}
		accepted <- h
	}()
	succ, err := DialHandoff(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer succ.Close()
	pred := <-accepted
	defer pred.Close()

	const n = fdBatch + 5
	var readers, writers []*os.File
	for range n {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		readers, writers = append(readers, r), append(writers, w)
	}
	t.Cleanup(func() { closeAll(readers); closeAll(writers) })
	if err := pred.Send(HandoffState{Version: Version, PID: 7, Listeners: []string{"127.0.0.1:5432"}}, writers); err != nil {
		t.Fatal(err)
	}
	if err := pred.Send(HandoffAck{OK: true}, nil); err != nil {
		t.Fatal(err)
	}
	var st HandoffState
	got, err := succ.Receive(&st)
	if err != nil {
		t.Fatal(err)
	}
	defer closeAll(got)
	if st.PID != 7 || len(st.Listeners) != 1 || len(got) != n {
		t.Fatalf("Receive = %+v with %d descriptors; want pid 7, 1 listener, %d descriptors", st, len(got), n)
	}
	for i, w := range got {
		if _, err := w.Write([]byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
		var b [1]byte
		if _, err := io.ReadFull(readers[i], b[:]); err != nil || b[0] != byte(i) {
			t.Fatalf("descriptor %d: read %v, %v; want %d", i, b[0], err, byte(i))
		}
	}
	var ack HandoffAck
	if files, err := succ.Receive(&ack); err != nil || !ack.OK || len(files) != 0 {
		t.Errorf("second Receive = %+v, %d descriptors, %v; want OK and none", ack, len(files), err)
	}
}
